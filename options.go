package herald

import (
	"log/slog"
	"time"

	"github.com/heraldhq/herald/broker"
)

// Version is the server's version, sent in welcome as "herald/<Version>".
const Version = "0.1.0"

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

	// DrainWindow is the time over which Shutdown spreads the 1001 closes of
	// open connections, so their clients do not come back together.
	// Default 5 s, never more than half of the Shutdown context's time left.
	DrainWindow time.Duration
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	setDefault(&c.PingInterval, 25*time.Second)
	setDefault(&c.PongTimeout, 15*time.Second)
	setDefault(&c.WriteTimeout, 10*time.Second)
	setDefault(&c.MaxMessageBytes, 64<<10)
	setDefault(&c.SendQueueBytes, 1<<20)
	setDefault(&c.MaxSubscriptions, 128)
	setDefault(&c.MaxErrors, 20)
	setDefault(&c.ErrorWindow, 10*time.Second)
	setDefault(&c.DrainWindow, 5*time.Second)
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
