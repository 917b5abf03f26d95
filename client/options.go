package client

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Options configure a Client. A nil *Options, and the zero value of every
// field, mean the documented defaults.
type Options struct {
	// Token is sent as "Authorization: Bearer <Token>" with every upgrade.
	// Without Token and TokenFunc the client connects anonymously, and stops
	// with ErrTokenRequired when the server needs a token: it waits for the
	// welcome DialTimeout plus 5 s, longer than a server's default
	// hello_timeout, so that it hears the server's 4001 rather than giving
	// up first.
	Token string
	// TokenFunc returns a token to connect with. It is called before the
	// first connection when Token is empty, and after the server rejected
	// the token in use (close 4001 or HTTP 401): the client never retries a
	// rejected token. When it fails, or returns the rejected token again,
	// the client backs off and asks again, unless the error wraps
	// ErrUnauthorized: then the client stops for good with that error (at
	// any call, also while connected). Without TokenFunc a rejected token
	// stops the client with a *CloseError of code 4001.
	//
	// When the token in use is a JWT with an exp claim (read without
	// checking the signature), TokenFunc also keeps the open connection
	// authenticated: at 80-90 % of the token's remaining lifetime, and at
	// least 5 s before exp when it lives long enough, the client asks it for
	// a new token and sends that in a refresh request, without reconnecting.
	// Once the server confirms it, the new token is the one the client
	// reconnects with, and its own exp plans the next refresh. A refresh
	// that fails (TokenFunc fails or returns the token in use, or the server
	// refuses the new token, for example unauthorized or forbidden) goes to
	// OnError and is tried again after a backoff delay, short of the expiry;
	// if none succeeds, the server closes the connection with 4001 at exp and
	// the client reconnects with a token from TokenFunc. A JWT that expired
	// while the client was disconnected is replaced the same way before the
	// next attempt.
	TokenFunc func(ctx context.Context) (string, error)

	// OnStateChange is called on every change of the client's state, in
	// order, never concurrently with itself and never under the client's
	// locks. It may call the client's methods.
	OnStateChange func(StateChange)
	// OnError is called with errors that belong to no call and change
	// nothing in the client's state: a failed token refresh (see TokenFunc;
	// a refusal by the server wraps a *protocol.Error). It is called like
	// OnStateChange, in order with it. Such errors are logged either way.
	OnError func(error)

	// OnServerSubscribe is called when the server subscribes the connection
	// to a channel the client does not hold: a herald server's connect hook
	// names such channels, confirmed by a subscribed frame without id right
	// after the welcome. It returns the handler of the channel's messages
	// and the options of a Subscribe; the client then holds the
	// subscription as one of its own (Client.Subscription returns it), and
	// after a reconnect recovers what it missed. A nil handler, or a nil
	// OnServerSubscribe, leaves the channel's messages unread. It is called
	// under the client's lock: it must not call the client's methods.
	OnServerSubscribe func(channel string) (handler func(Message), opts []SubscribeOption)

	// Backoff is the reconnection schedule; the zero value is PROTOCOL.md's.
	Backoff Backoff

	// DialTimeout bounds one connection attempt: TCP, TLS, the upgrade and
	// the wait for the server's welcome. Default 10 s.
	DialTimeout time.Duration
	// WriteTimeout is the deadline of every socket write. Default 10 s.
	WriteTimeout time.Duration

	// QueueMessages and QueueBytes bound the offline queue: publishes made
	// while the client is not connected wait there and are sent after the
	// next welcome and resubscription. A publish that would overflow it
	// fails at once with ErrQueueFull. Defaults 100 and 1 MiB; a negative
	// QueueMessages disables the queue, so that such publishes fail at once.
	QueueMessages int
	QueueBytes    int
	// QueueTimeout is how long one publish may wait in the offline queue
	// before it fails with ErrQueueTimeout. Default 60 s.
	QueueTimeout time.Duration

	// HandlerQueue bounds the messages waiting for one subscription's
	// handler. When a handler falls that far behind, the client stops taking
	// the channel's messages; once the handler has worked through half of
	// those waiting, it asks the server to replay from the last message it
	// took, and OnRecovery reports whether the server still had them (a
	// herald server keeps 1,000 messages for 2 minutes unless configured
	// otherwise). Default 10,000.
	HandlerQueue int

	// Header holds extra HTTP headers for the upgrade request.
	Header http.Header
	// TLSConfig configures wss:// connections; nil means the defaults, which
	// verify the server's certificate against the system's roots. A
	// certificate that fails verification stops Dial at once; after the
	// first welcome it is retried like any failed attempt.
	TLSConfig *tls.Config
	// NetDial opens the network connection; nil means a net.Dialer.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Compression offers permessage-deflate (RFC 7692): a server that
	// accepts it (herald serve --compression) sends large messages
	// compressed. The client's own messages go uncompressed.
	Compression bool

	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultDialTimeout   = 10 * time.Second
	DefaultWriteTimeout  = 10 * time.Second
	DefaultQueueMessages = 100
	DefaultQueueBytes    = 1 << 20
	DefaultQueueTimeout  = 60 * time.Second
	DefaultHandlerQueue  = 10000
	// defaultMaxMessageBytes is assumed until the first welcome says better.
	defaultMaxMessageBytes = 64 << 10
)

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	c.Backoff = c.Backoff.withDefaults()
	setDefault(&c.DialTimeout, DefaultDialTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	if c.QueueMessages == 0 {
		c.QueueMessages = DefaultQueueMessages
	}
	setDefault(&c.QueueBytes, DefaultQueueBytes)
	setDefault(&c.QueueTimeout, DefaultQueueTimeout)
	setDefault(&c.HandlerQueue, DefaultHandlerQueue)
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
