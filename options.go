package herald

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/broker"
)

// Version is the server's version, sent in welcome as "herald/<Version>".
const Version = "0.1.0"

// The defaults of Options, used where a field is zero. The herald binary's
// flags default to the same values.
const (
	DefaultPingInterval        = 25 * time.Second
	DefaultPongTimeout         = 15 * time.Second
	DefaultWriteTimeout        = 10 * time.Second
	DefaultHelloTimeout        = 10 * time.Second
	DefaultMaxMessageBytes     = 64 << 10
	DefaultSendQueueBytes      = 1 << 20
	DefaultMaxSubscriptions    = 128
	DefaultMaxErrors           = 20
	DefaultErrorWindow         = 10 * time.Second
	DefaultDrainWindow         = time.Second
	DefaultRate                = 50.0 // requests per second
	DefaultBurst               = 100
	DefaultPublishBytesRate    = 128 << 10 // bytes per second
	DefaultPublishBytesBurst   = 1 << 20
	DefaultCompressionMinBytes = 256
)

// Options configure a Server. The zero value of every field means the
// documented default; a nil *Options means all defaults.
type Options struct {
	// Broker stores streams and fans publications out across nodes. nil means
	// a new in-memory broker (broker.NewMemory(nil)), owned by the server.
	Broker broker.Broker

	// Logger receives connection events and errors. nil discards them.
	Logger *slog.Logger

	// PingInterval is the period of the server's ping frames. Default 25 s.
	PingInterval time.Duration
	// PongTimeout is the silence allowed after a ping; a connection that sent
	// nothing for PingInterval+PongTimeout is terminated. Default 15 s.
	PongTimeout time.Duration
	// WriteTimeout is the deadline of every socket write. Default 10 s.
	WriteTimeout time.Duration

	// MaxMessageBytes is the largest incoming message; larger ones close the
	// connection with 1009. Default 65536.
	MaxMessageBytes int
	// SendQueueBytes bounds each connection's queue of outgoing frames; a
	// connection whose queue overflows is closed with 4008. Default 1 MiB.
	SendQueueBytes int
	// MaxSubscriptions is the number of channels one connection may hold.
	// Default 128.
	MaxSubscriptions int
	// MaxConnections caps open connections; above it upgrades get 503 with
	// Retry-After. Zero means no cap.
	MaxConnections int

	// MaxErrors bad requests within ErrorWindow close the connection with
	// 4029. Defaults 20 and 10 s.
	MaxErrors   int
	ErrorWindow time.Duration

	// AllowedOrigins lists the browser origins, besides the request's own
	// host, that may connect: exact origins ("https://app.example.com"),
	// patterns with one '*' ("https://*.example.com"), or "*" for any.
	// Requests without an Origin header (non-browser clients) are allowed.
	AllowedOrigins []string
	// AllowedHosts lists the host names (the Host header, without port)
	// clients may connect to: exact names, "*.example.com" for the names
	// under example.com, or "*" for any. Empty means: on a connection
	// accepted at a loopback address, only localhost, 127.0.0.1 and [::1],
	// which stops DNS rebinding against a server on this machine; elsewhere,
	// any name. Other hosts get 403 for upgrades and API calls.
	AllowedHosts []string

	// Tokens verifies the tokens that come with the upgrade (Authorization:
	// Bearer, or the token query parameter), in hello and in refresh frames,
	// for instance an *auth.JWT. nil means tokens are not looked at.
	Tokens auth.Verifier
	// Authenticate, when set, identifies a connection from its upgrade request
	// before any token is looked at, so an application can use its own
	// sessions (a cookie, say). It returns nil and no error when the request
	// carries none of its credentials; an error refuses the upgrade with 401.
	Authenticate func(r *http.Request) (*auth.Identity, error)
	// Anonymous says whether connections without credentials are accepted.
	// Default AnonymousAuto.
	Anonymous AnonymousPolicy
	// HelloTimeout is how long a connection that needs credentials may take to
	// send hello. Default 10 s.
	HelloTimeout time.Duration
	// Authorize, when set, is asked after the built-in rules (token channels,
	// namespace access) allowed an action; returning false answers forbidden.
	Authorize func(id auth.Identity, action Action, channel string) bool
	// Hooks, when set, make the server ask an application's backend over
	// HTTP at connect, subscribe, publish, rpc and refresh (see HookOptions).
	Hooks *HookOptions
	// Namespaces holds per-namespace rules, keyed by namespace ("" is the
	// namespace of channel names without ':'). Missing namespaces allow all.
	Namespaces map[string]NamespaceOptions

	// Rate and Burst set each connection's request rate limit, a token
	// bucket: Rate requests per second on average, Burst at once. Defaults
	// 50 and 100. Requests above it are answered rate_limited.
	Rate  float64
	Burst int
	// PublishBytesRate and PublishBytesBurst bound the bytes of data each
	// connection may publish: PublishBytesRate per second on average,
	// PublishBytesBurst (at least MaxMessageBytes) at once. Defaults 128 KiB/s
	// and 1 MiB. A publish above it is answered rate_limited. The HTTP API is
	// not bound by it.
	PublishBytesRate  int
	PublishBytesBurst int
	// MaxConnectionsPerAddr caps open connections per remote IPv4 address or
	// IPv6 /64 (a host usually holds a whole /64); zero
	// means no cap. Behind a proxy every client shares the proxy's address.
	MaxConnectionsPerAddr int

	// APIKey is the bearer key of the HTTP API (APIHandler). Empty turns the
	// API off.
	APIKey string

	// Registry receives the server's Prometheus metrics (herald_*), served by
	// MetricsHandler. nil means a registry of the server's own.
	Registry *prometheus.Registry

	// DrainWindow is the time over which Shutdown spreads the 1001 closes of
	// open connections, so that the server does not close thousands in one
	// instant and clients that reconnect at once do not all arrive together.
	// Conforming clients add their own random 0-5 s before reconnecting, so
	// a restart keeps clients away for about DrainWindow plus 5 s. Default
	// 1 s, never more than half of the Shutdown context's time left.
	DrainWindow time.Duration

	// ReaderPerConnection gives every connection a reader goroutine for its
	// whole life. By default, on Linux, an idle plain-TCP connection is
	// parked in epoll with no goroutine and no read buffer, and a goroutine
	// reads it only while it has something to read; TLS connections, and all
	// connections on other systems, always have a reader goroutine.
	ReaderPerConnection bool

	// Compression makes the server accept permessage-deflate (RFC 7692)
	// from clients that offer it, always with server_no_context_takeover and
	// client_no_context_takeover: every message is compressed on its own, so
	// a publication is compressed at most once for all its subscribers and
	// no connection keeps a compression window. Off by default.
	Compression bool
	// CompressionMinBytes is the smallest payload sent compressed to a
	// connection that negotiated compression; smaller ones go as they are.
	// Default 256.
	CompressionMinBytes int
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	setDefault(&c.PingInterval, DefaultPingInterval)
	setDefault(&c.PongTimeout, DefaultPongTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.MaxMessageBytes, DefaultMaxMessageBytes)
	setDefault(&c.SendQueueBytes, DefaultSendQueueBytes)
	setDefault(&c.MaxSubscriptions, DefaultMaxSubscriptions)
	setDefault(&c.MaxErrors, DefaultMaxErrors)
	setDefault(&c.ErrorWindow, DefaultErrorWindow)
	setDefault(&c.DrainWindow, DefaultDrainWindow)
	setDefault(&c.HelloTimeout, DefaultHelloTimeout)
	setDefault(&c.Burst, DefaultBurst)
	setDefault(&c.PublishBytesRate, DefaultPublishBytesRate)
	setDefault(&c.PublishBytesBurst, DefaultPublishBytesBurst)
	setDefault(&c.CompressionMinBytes, DefaultCompressionMinBytes)
	if c.Rate <= 0 {
		c.Rate = DefaultRate
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// AnonymousPolicy says whether connections without credentials are accepted.
type AnonymousPolicy int

const (
	// AnonymousAuto accepts anonymous connections only when neither
	// Options.Tokens nor Options.Authenticate is set.
	AnonymousAuto AnonymousPolicy = iota
	// AnonymousAllow accepts them; they may still authenticate later with a
	// hello frame.
	AnonymousAllow
	// AnonymousDeny refuses them: 401 at upgrade, or 4001 when no valid hello
	// arrives within HelloTimeout.
	AnonymousDeny
)
