package main

import (
	"cmp"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/broker/redisbroker"
	"github.com/heraldhq/herald/web"
)

func init() {
	register(&command{name: "serve", summary: "run the server", run: runServe})
}

type serveConfig struct {
	config           string
	addr             string
	brokerURL        string
	opts             herald.Options
	history          broker.HistoryOptions
	namespaceHistory map[string]broker.HistoryOptions
	dataDir          string
	fsync            string
	allowedOrigins   string
	allowedHosts     string
	historyMaxBytes  int64
	channelMaxBytes  int
	maxChannels      int
	shutdownTimeout  time.Duration
	httpIdleTimeout  time.Duration
	metricsAddr      string
	logFormat        string
	jwtSecret        string
	jwtPublicKey     string
	jwtAudience      string
	jwtIssuer        string
	jwtRequireExp    bool
	allowAnonymous   bool
	tlsCert          string
	tlsKey           string
	tlsPoll          time.Duration // how often to look for renewed TLS files; 0: certPollInterval
	hooks            hookConfig
	presence         bool
	joinLeave        bool
	joinLeaveMax     int
	presenceTTL      time.Duration
	replicas         int
	replicaTimeout   time.Duration
}

func serveFlags(std stdio, c *serveConfig) *flag.FlagSet {
	fs := newFlagSet("serve", "[flags]", std)
	fs.StringVar(&c.config, "config", "", "YAML file with flag values (keys named like the flags) and a namespaces section")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&c.brokerURL, "broker", "memory", "broker: memory (this process only), or a Redis URL such as redis://127.0.0.1:6379/0 (rediss:// for TLS) to run several nodes as one service; redis://host1:port1,host2:port2 names the seed nodes of a Redis Cluster, and ?master_set=NAME makes the hosts Sentinels")
	fs.DurationVar(&c.opts.PingInterval, "ping-interval", herald.DefaultPingInterval, "server ping period")
	fs.DurationVar(&c.opts.PongTimeout, "pong-timeout", herald.DefaultPongTimeout, "silence allowed after a ping before the connection is dead")
	fs.DurationVar(&c.opts.WriteTimeout, "write-timeout", herald.DefaultWriteTimeout, "deadline of every socket write")
	fs.IntVar(&c.history.Size, "history-size", broker.DefaultHistorySize, "messages kept per channel for recovery")
	fs.DurationVar(&c.history.TTL, "history-ttl", broker.DefaultHistoryTTL, "how long they are kept")
	fs.Int64Var(&c.historyMaxBytes, "history-max-bytes", broker.DefaultMaxHistoryBytes, "memory broker: bytes of history of all channels together; when full, the largest channels lose their oldest messages first (recovering past them answers recovered:false); -1: no bound")
	fs.IntVar(&c.maxChannels, "max-channels", broker.DefaultMaxChannels, "memory broker: channels kept at once; at the cap, idle channels are dropped, else new channels are refused with limit_exceeded; -1: no cap")
	fs.IntVar(&c.channelMaxBytes, "history-channel-max-bytes", redisbroker.DefaultMaxHistoryBytes, "Redis broker: bytes of history per channel, besides --history-size and --history-ttl; -1: no byte bound")
	fs.StringVar(&c.dataDir, "data-dir", "", "where the memory broker keeps its streams: a write-ahead log of every publication, replayed after a crash, and a snapshot saved on graceful shutdown; locked by one server at a time (empty: keep nothing)")
	fs.StringVar(&c.fsync, "fsync", "interval", "with --data-dir, when the log is forced to disk: always (a publish is acknowledged once on disk; concurrent publishes share an fsync), interval (every 100ms) or off (when the OS likes); after a power cut, interval and off restart channels with new epochs")
	fs.IntVar(&c.opts.MaxMessageBytes, "max-message-bytes", herald.DefaultMaxMessageBytes, "largest incoming message")
	fs.BoolVar(&c.opts.Compression, "compression", false, "accept permessage-deflate (RFC 7692) from clients that offer it, with server_no_context_takeover and client_no_context_takeover: each publication is compressed once for all its subscribers and no connection keeps a compression window")
	fs.IntVar(&c.opts.CompressionMinBytes, "compression-min-bytes", herald.DefaultCompressionMinBytes, "with --compression, smaller payloads are sent uncompressed")
	fs.IntVar(&c.opts.SendQueueBytes, "send-queue-bytes", herald.DefaultSendQueueBytes, "per-connection send queue before the slow-consumer close; a recovery replays its backlog through it in pieces, so keep it at least twice the largest message")
	fs.IntVar(&c.opts.MaxSubscriptions, "max-subscriptions", herald.DefaultMaxSubscriptions, "channels per connection")
	fs.IntVar(&c.opts.MaxConnections, "max-connections", maxConnectionsFor(openFileLimit()), "connections open at once, WebSocket and HTTP not upgraded; above it upgrades get 503. Default: the open-file limit (RLIMIT_NOFILE) less 256, or half of it when it is 512 or less; 0: no limit")
	fs.StringVar(&c.allowedOrigins, "allowed-origins", "", "comma-separated browser origins or patterns (https://*.example.com) allowed besides the same host; spaces around entries are ignored")
	fs.StringVar(&c.allowedHosts, "allowed-hosts", "", "comma-separated host names (or *.example.com) clients may connect to, against DNS rebinding; empty: only localhost, 127.0.0.1 and [::1] when --addr is a loopback address, else any")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "time allowed for the graceful shutdown on SIGTERM/SIGINT (drain, then save); connections still open after it are cut")
	fs.DurationVar(&c.opts.DrainWindow, "drain-window", herald.DefaultDrainWindow, "time over which a shutdown spreads the 1001 closes of open connections (at most half of --shutdown-timeout)")
	fs.DurationVar(&c.httpIdleTimeout, "http-idle-timeout", 60*time.Second, "how long an HTTP keep-alive connection may wait for its next request before it is closed")
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json; logs go to stderr")
	fs.StringVar(&c.jwtSecret, "jwt-secret", "", "verify HS256 tokens with this secret, 32 bytes or more (pass it as HERALD_JWT_SECRET: command lines are visible to other users)")
	fs.StringVar(&c.jwtPublicKey, "jwt-public-key", "", "verify RS256/ES256 tokens with the public key in this PEM file")
	fs.StringVar(&c.jwtAudience, "jwt-audience", "", "required token audience (aud), if set")
	fs.StringVar(&c.jwtIssuer, "jwt-issuer", "", "required token issuer (iss), if set")
	fs.BoolVar(&c.jwtRequireExp, "jwt-require-exp", false, "refuse tokens without an expiry (exp)")
	fs.DurationVar(&c.opts.HelloTimeout, "hello-timeout", herald.DefaultHelloTimeout, "time allowed for the hello frame when a token is required and none came with the upgrade")
	fs.BoolVar(&c.allowAnonymous, "allow-anonymous", true, "accept connections without a token (default true when no token key is set, else false)")
	fs.Float64Var(&c.opts.Rate, "rate", herald.DefaultRate, "per-connection request rate limit (requests per second)")
	fs.IntVar(&c.opts.Burst, "burst", herald.DefaultBurst, "per-connection request burst")
	fs.IntVar(&c.opts.PublishBytesRate, "publish-bytes-rate", herald.DefaultPublishBytesRate, "per-connection limit on the bytes of data published, per second (the HTTP API is not limited)")
	fs.IntVar(&c.opts.PublishBytesBurst, "publish-bytes-burst", herald.DefaultPublishBytesBurst, "per-connection bytes of data that may be published at once (at least --max-message-bytes)")
	fs.IntVar(&c.opts.MaxConnectionsPerAddr, "max-connections-per-addr", 0, "connections per remote IPv4 address or IPv6 /64; above it upgrades get 503 (0: no limit)")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "certificate PEM file: serve HTTPS and wss:// (with --tls-key); loaded again on SIGHUP and when it or the key file changes")
	fs.StringVar(&c.tlsKey, "tls-key", "", "private key PEM file for --tls-cert")
	fs.StringVar(&c.opts.APIKey, "api-key", "", "bearer key of the HTTP API under /api/, the dashboard and /metrics (empty: API and dashboard off, /metrics open); pass it as HERALD_API_KEY")
	c.hooks.register(fs)
	fs.BoolVar(&c.presence, "presence", false, "keep presence (who is subscribed; the presence request) in the namespaces the config file does not set it for")
	fs.BoolVar(&c.joinLeave, "join-leave", false, "with --presence, send join and leave events to a channel's other subscribers, on channels of at most --join-leave-max-members members")
	fs.IntVar(&c.joinLeaveMax, "join-leave-max-members", herald.DefaultMaxJoinLeaveMembers, "above this many members a channel sends no join or leave events (bounds the frames a crowd joining at once makes); -1: no bound")
	fs.IntVar(&c.replicas, "broker-replicas", 0, "Redis broker: acknowledge a publish only once this many replicas hold it (WAIT), so that a failover loses no acknowledged publication; a publish they do not confirm within --broker-replica-timeout answers unavailable (0: once the primary has it)")
	fs.DurationVar(&c.replicaTimeout, "broker-replica-timeout", time.Second, "Redis broker: how long a publish waits for --broker-replicas")
	fs.DurationVar(&c.presenceTTL, "presence-ttl", broker.DefaultPresenceTTL, "Redis broker: how long this node's presence members outlive it if it dies without shutting down (it refreshes them every 5/12 of it)")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve /metrics on this address alone (for example 127.0.0.1:9090), without the API key, instead of on --addr")
	return fs
}

// namespaceConfig is one entry of the config file's namespaces section:
//
//	namespaces:
//	  chat: {publish: users, history-size: 100, history-ttl: 5m}
//	  news: {publish: none}
type namespaceConfig struct {
	Subscribe   herald.Access `yaml:"subscribe"`
	Publish     herald.Access `yaml:"publish"`
	HistorySize int           `yaml:"history-size"`
	HistoryTTL  time.Duration `yaml:"history-ttl"`

	HookSubscribe string `yaml:"hook-subscribe"` // hooks.go
	HookPublish   string `yaml:"hook-publish"`
	HookRPC       string `yaml:"hook-rpc"`
	// Presence and JoinLeave are unset (nil) when the entry leaves them to
	// --presence and --join-leave.
	Presence  *bool `yaml:"presence"`
	JoinLeave *bool `yaml:"join-leave"`
}

// finish derives the options that depend on several flags and reads the
// namespaces section of the config file.
func (c *serveConfig) finish(fs *flag.FlagSet) error {
	c.opts.AllowedOrigins = nil
	for _, o := range strings.Split(c.allowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.opts.AllowedOrigins = append(c.opts.AllowedOrigins, o)
		}
	}
	c.opts.AllowedHosts = nil
	for _, h := range strings.Split(c.allowedHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.opts.AllowedHosts = append(c.opts.AllowedHosts, h)
		}
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return usageError{errors.New("--tls-cert and --tls-key go together")}
	}
	if err := c.tokens(); err != nil {
		return err
	}
	if err := c.hooks.apply(c.config, &c.opts); err != nil {
		return err
	}
	anonymousSet := false
	fs.Visit(func(f *flag.Flag) { anonymousSet = anonymousSet || f.Name == "allow-anonymous" })
	switch {
	case !anonymousSet:
		c.opts.Anonymous = herald.AnonymousAuto
	case c.allowAnonymous:
		c.opts.Anonymous = herald.AnonymousAllow
	default:
		c.opts.Anonymous = herald.AnonymousDeny
	}
	var ns map[string]namespaceConfig
	if err := readConfigSection(c.config, "namespaces", &ns); err != nil {
		return err
	}
	c.opts.Namespaces = make(map[string]herald.NamespaceOptions, len(ns))
	c.namespaceHistory = make(map[string]broker.HistoryOptions, len(ns))
	for name, n := range ns {
		for _, a := range []herald.Access{n.Subscribe, n.Publish} {
			if a != "" && a != herald.AccessAll && a != herald.AccessUsers && a != herald.AccessNone {
				return fmt.Errorf("config: namespace %q: access %q is not all, users or none", name, a)
			}
		}
		// The history bounds go to the broker openBroker makes; the
		// server reads NamespaceOptions.History only for a broker of its own.
		c.opts.Namespaces[name] = herald.NamespaceOptions{Subscribe: n.Subscribe, Publish: n.Publish,
			Presence: boolOr(n.Presence, c.presence), JoinLeave: boolOr(n.JoinLeave, c.joinLeave), MaxJoinLeaveMembers: c.joinLeaveMax}
		if o := c.opts.Namespaces[name]; o.JoinLeave && !o.Presence {
			return fmt.Errorf("config: namespace %q: join-leave needs presence", name)
		}
		c.namespaceHistory[name] = broker.HistoryOptions{Size: n.HistorySize, TTL: n.HistoryTTL}
	}
	if c.joinLeave && !c.presence {
		return usageError{errors.New("--join-leave needs --presence")}
	}
	c.opts.Namespaces[herald.AnyNamespace] = herald.NamespaceOptions{Presence: c.presence, JoinLeave: c.joinLeave, MaxJoinLeaveMembers: c.joinLeaveMax}
	return nil
}

// boolOr returns *p, or def when p is nil.
func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

// tokens sets up JWT verification from the --jwt-* flags.
func (c *serveConfig) tokens() error {
	if c.jwtSecret == "" && c.jwtPublicKey == "" {
		return nil
	}
	o := auth.JWTOptions{Secret: []byte(c.jwtSecret), Audience: c.jwtAudience, Issuer: c.jwtIssuer, RequireExp: c.jwtRequireExp}
	if c.jwtPublicKey != "" {
		pemData, err := os.ReadFile(c.jwtPublicKey)
		if err != nil {
			return err
		}
		if o.PublicKey, err = auth.ParsePublicKey(pemData); err != nil {
			return err
		}
	}
	v, err := auth.NewJWT(o)
	if err != nil {
		return usageError{err}
	}
	c.opts.Tokens = v
	return nil
}

func runServe(ctx context.Context, std stdio, args []string) error {
	var c serveConfig
	fs := serveFlags(std, &c)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := c.finish(fs); err != nil {
		return err
	}
	log, err := newLogger(std.err, c.logFormat)
	if err != nil {
		return err
	}
	b, err := openBroker(c, log)
	if err != nil {
		return err
	}
	c.opts.Broker, c.opts.Logger = b, log
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		b.Close()
		return err
	}
	return serve(ctx, ln, &c, log)
}

// serve runs the HTTP server on ln until ctx ends, then shuts down
// gracefully: HTTP first, then the WebSocket connections (1001, drained),
// then the broker, which saves its streams when it has a data directory.
func serve(ctx context.Context, ln net.Listener, c *serveConfig, log *slog.Logger) error {
	var certs *certReloader
	if c.tlsCert != "" {
		var err error
		if certs, err = newCertReloader(c.tlsCert, c.tlsKey, log); err != nil {
			ln.Close()
			c.opts.Broker.Close()
			return err
		}
	}
	var metricsLn net.Listener
	if c.metricsAddr != "" {
		var err error
		if metricsLn, err = net.Listen("tcp", c.metricsAddr); err != nil {
			ln.Close()
			c.opts.Broker.Close()
			return fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c.opts.Registry = reg
	srv := herald.New(&c.opts)
	mux := http.NewServeMux()
	mux.Handle("GET /ws", srv)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /readyz", srv.ReadyHandler())
	var metrics *http.Server
	if metricsLn != nil {
		mm := http.NewServeMux()
		mm.Handle("GET /metrics", srv.MetricsHandler())
		metrics = &http.Server{Handler: mm, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: c.httpIdleTimeout}
	} else {
		mux.Handle("GET /metrics", bearer(c.opts.APIKey, srv.MetricsHandler()))
	}
	mux.Handle("/api/", srv.APIHandler())
	if c.opts.APIKey != "" {
		mux.Handle("GET /dashboard/", http.StripPrefix("/dashboard/", web.Dashboard()))
		mux.Handle("GET /dashboard", http.RedirectHandler("/dashboard/", http.StatusMovedPermanently))
	}
	mux.Handle("/", web.Handler())
	conns := newHTTPConns(c.opts.MaxConnections, srv.Connections)
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       c.httpIdleTimeout,
		ConnState:         conns.ConnState,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	errc := make(chan error, 2)
	scheme := "http"
	if certs != nil {
		scheme = "https"
		hs.TLSConfig = &tls.Config{GetCertificate: certs.GetCertificate}
		poll := cmp.Or(c.tlsPoll, certPollInterval)
		defer certs.watch(poll)()
		go func() { errc <- hs.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- hs.Serve(ln) }()
	}
	addr := ln.Addr().String()
	log.Info("herald serving", "url", scheme+"://"+addr+"/", "ws", strings.Replace(scheme, "http", "ws", 1)+"://"+addr+"/ws", "version", herald.Version)
	if c.opts.Tokens == nil {
		log.Warn("running without authentication: any client may connect, subscribe and publish; set --jwt-secret or --jwt-public-key")
	}
	if n := len(c.jwtSecret); n > 0 && n < minSecretBytes {
		log.Warn("the --jwt-secret is short: an HS256 secret under 32 bytes can be guessed offline from one token", "bytes", n)
	}

	if metrics != nil {
		go func() { errc <- metrics.Serve(metricsLn) }()
		log.Info("metrics serving", "url", "http://"+metricsLn.Addr().String()+"/metrics")
	}

	select {
	case err := <-errc:
		hs.Close()
		if metrics != nil {
			metrics.Close()
		}
		srv.Close()
		c.opts.Broker.Close()
		return err
	case <-ctx.Done():
	}
	// Each step is logged with how long it took: a restart's downtime is the
	// sum of these and of the next process's start.
	start := time.Now()
	log.Info("shutting down", "timeout", c.shutdownTimeout, "drain_window", c.opts.DrainWindow, "connections", srv.Connections())
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	herr := hs.Shutdown(sctx)
	if errors.Is(herr, context.DeadlineExceeded) {
		herr = hs.Close() // cut the HTTP requests still running
	}
	if metrics != nil {
		metrics.Close()
	}
	log.Info("http server stopped", "took", since(start))
	t := time.Now()
	open := srv.Connections()
	serr := srv.Shutdown(sctx)
	log.Info("connections closed", "took", since(t))
	if sctx.Err() != nil {
		log.Warn("shutdown timeout reached: connections still open were cut", "timeout", c.shutdownTimeout, "connections", open)
		serr = withoutTimeout(serr)
	}
	t = time.Now()
	berr := c.opts.Broker.Close()
	if berr != nil {
		log.Error("broker close failed", "err", berr)
	}
	log.Info("broker closed", "took", since(t))
	if err := errors.Join(herr, serr, berr); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped", "took", since(start))
	return nil
}

// withoutTimeout is err less the context.DeadlineExceeded that
// herald.Server.Shutdown joins to its other errors when its context ends:
// connections cut at the shutdown timeout are the shutdown working as
// designed, not a failure.
func withoutTimeout(err error) error {
	var keep []error
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
		} else if e != nil && !errors.Is(e, context.DeadlineExceeded) {
			keep = append(keep, e)
		}
	}
	walk(err)
	return errors.Join(keep...)
}

// minSecretBytes is the shortest HS256 secret serve accepts without a
// warning: as many bytes as the hash (RFC 7518 §3.2).
const minSecretBytes = 32

// bearer requires "Authorization: Bearer key" on h's requests when key is
// set; Prometheus sends it with authorization: {credentials: KEY}.
func bearer(key string, h http.Handler) http.Handler {
	if key == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(key)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
			http.Error(w, "missing or wrong API key", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// since is the time since t, rounded for logs.
func since(t time.Time) time.Duration {
	return time.Since(t).Round(100 * time.Microsecond)
}

func openBroker(c serveConfig, log *slog.Logger) (broker.Broker, error) {
	switch {
	case c.brokerURL == "memory":
		fsync, err := broker.ParseFsyncMode(c.fsync)
		if err != nil {
			return nil, usageError{fmt.Errorf("--fsync must be always, interval or off, not %q", c.fsync)}
		}
		b, err := broker.OpenMemory(&broker.MemoryOptions{History: c.history, Namespaces: c.namespaceHistory, DataDir: c.dataDir, Fsync: fsync, MaxHistoryBytes: c.historyMaxBytes, MaxChannels: c.maxChannels, Logger: log})
		if err != nil {
			return nil, err
		}
		return b, nil
	case strings.HasPrefix(c.brokerURL, "redis://") || strings.HasPrefix(c.brokerURL, "rediss://") || strings.HasPrefix(c.brokerURL, "unix://"):
		if c.dataDir != "" {
			return nil, usageError{errors.New("--data-dir applies to the memory broker only: Redis keeps the streams")}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b, err := redisbroker.New(ctx, redisbroker.Options{URL: c.brokerURL, History: c.history, Namespaces: c.namespaceHistory, MaxHistoryBytes: c.channelMaxBytes, PresenceTTL: c.presenceTTL, Replicas: c.replicas, ReplicaTimeout: c.replicaTimeout, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("redis broker: %w", err)
		}
		return b, nil
	default:
		return nil, usageError{fmt.Errorf("unknown broker %q (want memory or redis://host:port/db)", c.brokerURL)}
	}
}

func newLogger(w io.Writer, format string) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, usageError{fmt.Errorf("--log-format must be text or json, not %q", format)}
}
