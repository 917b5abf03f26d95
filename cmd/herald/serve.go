package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/web"
)

func init() {
	register(&command{name: "serve", summary: "run the server", run: runServe})
}

type serveConfig struct {
	addr            string
	brokerURL       string
	opts            herald.Options
	history         broker.HistoryOptions
	dataDir         string
	allowedOrigins  string
	shutdownTimeout time.Duration
	logFormat       string
}

func serveFlags(std stdio, c *serveConfig) *flag.FlagSet {
	fs := newFlagSet("serve", "[flags]", std)
	fs.String("config", "", "YAML file with flag values (keys named like the flags)")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&c.brokerURL, "broker", "memory", "broker: memory")
	fs.DurationVar(&c.opts.PingInterval, "ping-interval", 25*time.Second, "server ping period")
	fs.DurationVar(&c.opts.PongTimeout, "pong-timeout", 15*time.Second, "silence allowed after a ping before the connection is dead")
	fs.DurationVar(&c.opts.WriteTimeout, "write-timeout", 10*time.Second, "deadline of every socket write")
	fs.IntVar(&c.history.Size, "history-size", broker.DefaultHistorySize, "messages kept per channel for recovery")
	fs.DurationVar(&c.history.TTL, "history-ttl", broker.DefaultHistoryTTL, "how long they are kept")
	fs.StringVar(&c.dataDir, "data-dir", "", "where the memory broker saves its streams on graceful shutdown and reloads them at start (empty: keep nothing)")
	fs.IntVar(&c.opts.MaxMessageBytes, "max-message-bytes", 65536, "largest incoming message")
	fs.IntVar(&c.opts.SendQueueBytes, "send-queue-bytes", 1<<20, "per-connection send queue before the slow-consumer close")
	fs.IntVar(&c.opts.MaxSubscriptions, "max-subscriptions", 128, "channels per connection")
	fs.IntVar(&c.opts.MaxConnections, "max-connections", 0, "total connections; above it upgrades get 503 (0: no limit)")
	fs.StringVar(&c.allowedOrigins, "allowed-origins", "", "comma-separated browser origins or patterns (https://*.example.com) allowed besides the same host")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "drain window on SIGTERM/SIGINT")
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json; logs go to stderr")
	return fs
}

func runServe(ctx context.Context, std stdio, args []string) error {
	var c serveConfig
	if err := parseFlags(serveFlags(std, &c), args); err != nil {
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
	if c.allowedOrigins != "" {
		c.opts.AllowedOrigins = strings.Split(c.allowedOrigins, ",")
	}
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
	srv := herald.New(&c.opts)
	mux := http.NewServeMux()
	mux.Handle("GET /ws", srv)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /", web.Handler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("herald serving", "url", "http://"+ln.Addr().String()+"/", "ws", "ws://"+ln.Addr().String()+"/ws", "version", herald.Version)

	select {
	case err := <-errc:
		srv.Close()
		c.opts.Broker.Close()
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", c.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	err := errors.Join(hs.Shutdown(sctx), srv.Shutdown(sctx), c.opts.Broker.Close())
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

func openBroker(c serveConfig, log *slog.Logger) (broker.Broker, error) {
	switch {
	case c.brokerURL == "memory":
		return broker.NewMemory(&broker.MemoryOptions{History: c.history, DataDir: c.dataDir, Logger: log}), nil
	default:
		return nil, usageError{fmt.Errorf("unknown broker %q (want memory)", c.brokerURL)}
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
