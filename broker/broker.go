// Package broker defines how a Herald server stores channel streams and
// reaches the other nodes of a cluster, and provides the in-memory broker
// used by a single node.
//
// A channel's stream is an epoch and an offset that grows by exactly one per
// publication. The epoch changes whenever the stream's history is lost, so a
// position from an old epoch can never be mistaken for one of the new stream.
//
// Every error the package returns starts with "herald: broker: ", its
// sentinels (ErrClosed, ErrUnavailable, ...) included; an error of another
// broker package that wraps one of them starts with the sentinel's text.
package broker

import (
	"context"
	"errors"
	"time"

	"github.com/heraldhq/herald/protocol"
)

// StreamPosition is a point in a channel's stream. The zero value means "no
// position".
type StreamPosition = protocol.StreamPosition

// Publication is one message of a channel's stream. Receivers must not
// modify Data: a broker may share it with its history.
type Publication struct {
	Channel string
	Epoch   string
	Offset  uint64
	Data    []byte // JSON text, passed through untouched
	// Time is when the publication was accepted, in milliseconds since the
	// Unix epoch, by the clock of the node that published it; the same in
	// every later read. Zero for publications stored before brokers kept it.
	Time int64
	// From is the connection that published it; zero when the application
	// published (the HTTP API, Server.Publish).
	From From
}

// PublishOptions are per-publish settings.
type PublishOptions struct {
	// Key makes the publish idempotent: a second publish on the same channel
	// with the same non-empty key, within the history window, is not stored
	// or delivered again and returns the first publication's position.
	Key string
	// From is the publishing connection, stored with the publication.
	From From
}

// HistoryOptions bound a channel's history.
type HistoryOptions struct {
	// Size is the number of publications kept. Zero means 1000.
	Size int
	// TTL is how long a publication is kept. Zero means 2 minutes.
	TTL time.Duration
}

// Defaults of HistoryOptions.
const (
	DefaultHistorySize = 1000
	DefaultHistoryTTL  = 2 * time.Minute
)

// WithDefaults returns o with zero fields set to their defaults.
func (o HistoryOptions) WithDefaults() HistoryOptions {
	if o.Size <= 0 {
		o.Size = DefaultHistorySize
	}
	if o.TTL <= 0 {
		o.TTL = DefaultHistoryTTL
	}
	return o
}

// HistoryPolicy bounds the history of every channel by its namespace: the
// part of the channel name before its first ':' (see protocol.Namespace; ""
// is the namespace of names without ':'). Both brokers resolve a channel's
// bounds through it, and the server builds one from its NamespaceOptions.
// The zero value bounds every channel by the HistoryOptions defaults.
type HistoryPolicy struct {
	// Default bounds the channels whose namespace has no entry in
	// Namespaces. Zero fields mean DefaultHistorySize and DefaultHistoryTTL.
	Default HistoryOptions
	// Namespaces overrides Default per namespace. Zero fields of an entry
	// take Default's value.
	Namespaces map[string]HistoryOptions
}

// WithDefaults returns p with every zero field set: Default's to the
// HistoryOptions defaults, each namespace's to Default's. The map is a copy.
func (p HistoryPolicy) WithDefaults() HistoryPolicy {
	p.Default = p.Default.WithDefaults()
	if len(p.Namespaces) == 0 {
		p.Namespaces = nil
		return p
	}
	ns := make(map[string]HistoryOptions, len(p.Namespaces))
	for name, o := range p.Namespaces {
		if o.Size <= 0 {
			o.Size = p.Default.Size
		}
		if o.TTL <= 0 {
			o.TTL = p.Default.TTL
		}
		ns[name] = o
	}
	p.Namespaces = ns
	return p
}

// For returns the history bounds of channel. Call it on a policy returned
// by WithDefaults to get no zero field.
func (p HistoryPolicy) For(channel string) HistoryOptions {
	if o, ok := p.Namespaces[protocol.Namespace(channel)]; ok {
		return o
	}
	return p.Default
}

// ShortestTTL returns the shortest history TTL of any channel: what a
// broker sweeping or refreshing expiring streams paces itself by.
func (p HistoryPolicy) ShortestTTL() time.Duration {
	ttl := p.Default.TTL
	for _, o := range p.Namespaces {
		ttl = min(ttl, o.TTL)
	}
	return ttl
}

// Errors returned by brokers.
var (
	// ErrUnrecoverable means the publications after a position are no longer
	// all in history (wrong epoch, or too old).
	ErrUnrecoverable = errors.New("herald: broker: stream position not recoverable")
	// ErrUnavailable means the broker cannot be reached; the caller may retry.
	ErrUnavailable = errors.New("herald: broker: unavailable")
	// ErrClosed means the broker was closed.
	ErrClosed = errors.New("herald: broker: closed")
)

// Broker stores channel streams and delivers publications to the nodes that
// subscribed to their channels. Implementations are safe for concurrent use.
type Broker interface {
	// Publish appends data to the channel's stream and delivers it to every
	// subscribed node. It returns the publication's position.
	Publish(ctx context.Context, channel string, data []byte, opts PublishOptions) (StreamPosition, error)
	// Position returns the channel's current position: its epoch and newest
	// offset (0 when nothing was published). A channel's stream exists from
	// its first use: later publications continue the epoch Position returned
	// unless the stream is lost in between.
	Position(ctx context.Context, channel string) (StreamPosition, error)
	// History returns up to limit publications after since, in offset order,
	// and the channel's current position. It returns ErrUnrecoverable when
	// since's epoch is not the current one or some publications after since
	// have left history. limit <= 0 means no limit.
	History(ctx context.Context, channel string, since StreamPosition, limit int) ([]Publication, StreamPosition, error)
	// Pager reads history backwards, a page at a time (history pages and
	// the backlog of a subscribe with last).
	Pager
	// Subscribe tells the broker this node wants the channel's publications;
	// Unsubscribe that it no longer does. Calls are not counted: the node
	// subscribes once per channel. When Subscribe returns, every later
	// publication of the channel is delivered, which is what lets a caller
	// subscribe first and then read History without a gap.
	Subscribe(ctx context.Context, channel string) error
	Unsubscribe(ctx context.Context, channel string) error
	// Run delivers publications of subscribed channels until ctx ends or the
	// broker is closed. deliver is called in offset order for each channel,
	// never concurrently for the same channel; it must not block. A nil
	// deliver returns ErrNoDeliver, and a Run while another is active
	// returns ErrRunning at once.
	Run(ctx context.Context, deliver func(Publication)) error
	// Close releases the broker's resources.
	Close() error
}

// BatchRunner is a Broker whose publications can reach the node several at
// a time, as those of a Redis subscription do. RunBatches is Run with a
// deliver that takes every publication that has arrived and not been
// delivered yet, in arrival order (offset order for each channel), so that
// the node queues them all for its connections before writing any: a burst
// goes out in one write per connection. The guards and errors are Run's,
// and Run and RunBatches exclude each other.
type BatchRunner interface {
	RunBatches(ctx context.Context, deliver func([]Publication)) error
}

// RunReporter is a Broker that tells whether a Run (or RunBatches) has its
// deliver func in place. A publication made before that is stored but
// delivered to nobody, so a caller that starts Run on a goroutine of its
// own waits for Running before it lets clients subscribe.
type RunReporter interface {
	Running() bool
}

// WatchReporter is a Presence that tells whether a WatchPresence has its
// deliver func in place; joins and leaves before that reach nobody.
type WatchReporter interface {
	Watching() bool
}

// BatchPublisher is a Broker that can take several publishes at once, as
// a Redis broker does in one round trip. PublishBatch makes each publish
// of reqs as Publish would, one after the other in order, and sets res[i]
// (len(res) == len(reqs)) to the outcome of reqs[i].
type BatchPublisher interface {
	PublishBatch(ctx context.Context, reqs []PublishRequest, res []PublishResult)
}

// PublishRequest is one publish of a batch: Publish's arguments.
type PublishRequest struct {
	Channel string
	Data    []byte
	Opts    PublishOptions
}

// PublishResult is the outcome of one publish of a batch: Publish's results.
type PublishResult struct {
	Pos StreamPosition
	Err error
}

// The errors of Broker.Run's guards, the same for every broker.
var (
	// ErrNoDeliver is returned by Run when its deliver func is nil.
	ErrNoDeliver = errors.New("herald: broker: Run needs a deliver func")
	// ErrRunning is returned at once by a Run called while another Run of
	// the same broker is active.
	ErrRunning = errors.New("herald: broker: Run is already active")
)

// Checker is implemented by brokers that can tell whether they can serve
// right now (for a networked broker: whether its server is reachable). The
// server's readiness check uses it; a broker without it counts as ready
// until it is closed.
type Checker interface {
	Check(ctx context.Context) error
}
