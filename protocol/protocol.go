// Package protocol defines Herald's wire protocol, version 1 (herald.v1):
// the frame types, the error and close codes, channel name rules, and the
// Encode and Decode functions shared by the server, the Go client and the
// command line tools.
//
// One WebSocket text message holds exactly one JSON object with a string
// field "type". The contract is written down in docs/PROTOCOL.md.
//
// Every error the package returns to a Go caller starts with
// "herald: protocol: ". The messages meant for an error frame (of
// ValidateChannel, and the Error that Decode returns) carry no prefix: a
// client shows them as they are.
package protocol

import "encoding/json"

// Subprotocol is the WebSocket subprotocol name of this protocol version.
const Subprotocol = "herald.v1"

// Frame types.
const (
	TypeHello        = "hello"
	TypeWelcome      = "welcome"
	TypeSubscribe    = "subscribe"
	TypeSubscribed   = "subscribed"
	TypeUnsubscribe  = "unsubscribe"
	TypeUnsubscribed = "unsubscribed"
	TypePublish      = "publish"
	TypePublished    = "published"
	TypePing         = "ping"
	TypePong         = "pong"
	TypeRefresh      = "refresh"
	TypeRefreshed    = "refreshed"
	TypeMessage      = "message"
	TypeError        = "error"
)

// MaxKeyBytes is the longest idempotency key a publish may carry.
const MaxKeyBytes = 64

// Frame is one protocol frame. Every frame type of herald.v1 is a struct in
// this package that implements Frame.
type Frame interface {
	// Type returns the value of the frame's "type" field.
	Type() string
}

// Request is a frame a client sends. RequestID returns its id, 0 when absent.
type Request interface {
	Frame
	RequestID() uint64
}

// StreamPosition is a point in a channel's stream.
type StreamPosition struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// Hello carries credentials when they did not come with the upgrade.
type Hello struct {
	ID     uint64 `json:"id,omitempty"`
	Token  string `json:"token"`
	Client string `json:"client,omitempty"`
}

// Subscribe asks for a channel's messages; with Since it asks for recovery of
// what was published after that position.
type Subscribe struct {
	ID      uint64          `json:"id,omitempty"`
	Channel string          `json:"channel"`
	Since   *StreamPosition `json:"since,omitempty"`
	// Last asks for a backlog of the newest Last messages (0 to MaxLast; 0
	// means none). It cannot be combined with Since.
	Last int `json:"last,omitempty"`
}

// Unsubscribe stops a channel's messages.
type Unsubscribe struct {
	ID      uint64 `json:"id,omitempty"`
	Channel string `json:"channel"`
}

// Publish sends Data (any JSON value) to every subscriber of Channel. A
// non-empty Key makes the publish idempotent within the history window.
type Publish struct {
	ID      uint64          `json:"id,omitempty"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
	Key     string          `json:"key,omitempty"`
}

// Ping is the application-level heartbeat; the server answers with Pong.
type Ping struct {
	ID uint64 `json:"id,omitempty"`
}

// Refresh replaces the connection's token.
type Refresh struct {
	ID    uint64 `json:"id,omitempty"`
	Token string `json:"token"`
}

// Welcome is the server's first frame on an authenticated connection.
type Welcome struct {
	ID              uint64 `json:"id,omitempty"`
	Session         string `json:"session"`
	Server          string `json:"server"`
	PingIntervalMS  int64  `json:"ping_interval_ms"`
	PongTimeoutMS   int64  `json:"pong_timeout_ms"`
	MaxMessageBytes int    `json:"max_message_bytes"`
	User            string `json:"user,omitempty"`
	// Rate and Burst are the connection's request rate limit, a token
	// bucket: Rate requests per second on average, Burst at once. Clients
	// pace resubscription and their offline queue to it. Zero when the
	// server does not say (servers before this field).
	Rate  float64 `json:"rate,omitempty"`
	Burst int     `json:"burst,omitempty"`
}

// Subscribed confirms a subscription. Offset is the channel's newest offset
// at subscribe time. Recovered is set only when the subscribe carried since.
type Subscribed struct {
	ID        uint64 `json:"id,omitempty"`
	Channel   string `json:"channel"`
	Epoch     string `json:"epoch"`
	Offset    uint64 `json:"offset"`
	Recovered *bool  `json:"recovered,omitempty"`
}

// Unsubscribed confirms an unsubscribe.
type Unsubscribed struct {
	ID      uint64 `json:"id,omitempty"`
	Channel string `json:"channel"`
	// Reason is set, and ID is not, when the server ended the subscription
	// itself (a refreshed token no longer allows it).
	Reason string `json:"reason,omitempty"`
}

// Published confirms a publish with the offset it was given.
type Published struct {
	ID      uint64 `json:"id,omitempty"`
	Channel string `json:"channel"`
	Offset  uint64 `json:"offset"`
}

// Pong answers Ping.
type Pong struct {
	ID uint64 `json:"id,omitempty"`
}

// Refreshed confirms a token refresh; ExpiresAt is the new token's expiry in
// Unix seconds, 0 when it has none.
type Refreshed struct {
	ID        uint64 `json:"id,omitempty"`
	ExpiresAt int64  `json:"expires_at,omitempty"`
}

// Message is one publication delivered to a subscriber. TS is when the
// server accepted it (milliseconds since the Unix epoch; 0 when unknown,
// and then absent); From the connection that published it, nil for the
// HTTP API.
type Message struct {
	Channel string          `json:"channel"`
	Offset  uint64          `json:"offset"`
	TS      int64           `json:"ts,omitempty"`
	From    *From           `json:"from,omitempty"`
	Data    json.RawMessage `json:"data"`
}

// Error answers a request that could not be served. ID is the failed
// request's id, when it had a valid one. RetryAfterMS is set with
// CodeRateLimited.
type Error struct {
	ID           uint64 `json:"id,omitempty"`
	Code         Code   `json:"code"`
	Message      string `json:"message"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
}

func (*Hello) Type() string        { return TypeHello }
func (*Subscribe) Type() string    { return TypeSubscribe }
func (*Unsubscribe) Type() string  { return TypeUnsubscribe }
func (*Publish) Type() string      { return TypePublish }
func (*Ping) Type() string         { return TypePing }
func (*Refresh) Type() string      { return TypeRefresh }
func (*Welcome) Type() string      { return TypeWelcome }
func (*Subscribed) Type() string   { return TypeSubscribed }
func (*Unsubscribed) Type() string { return TypeUnsubscribed }
func (*Published) Type() string    { return TypePublished }
func (*Pong) Type() string         { return TypePong }
func (*Refreshed) Type() string    { return TypeRefreshed }
func (*Message) Type() string      { return TypeMessage }
func (*Error) Type() string        { return TypeError }

func (f *Hello) RequestID() uint64       { return f.ID }
func (f *Subscribe) RequestID() uint64   { return f.ID }
func (f *Unsubscribe) RequestID() uint64 { return f.ID }
func (f *Publish) RequestID() uint64     { return f.ID }
func (f *Ping) RequestID() uint64        { return f.ID }
func (f *Refresh) RequestID() uint64     { return f.ID }

// Error makes *Error an error, so Decode can return it.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }
