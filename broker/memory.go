package broker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/protocol"
)

// MemoryOptions configure a memory broker. The zero value (or a nil pointer)
// keeps DefaultHistorySize publications for DefaultHistoryTTL per channel and
// writes nothing to disk.
type MemoryOptions struct {
	// History bounds the history of every channel whose namespace has no
	// entry in Namespaces. Zero fields mean DefaultHistorySize and
	// DefaultHistoryTTL.
	History HistoryOptions
	// Namespaces overrides History per namespace: the part of the channel
	// name before its first ':' (see protocol.Namespace; "" is the namespace
	// of names without ':'). Zero fields of an entry take History's value.
	Namespaces map[string]HistoryOptions
	// DataDir is where Close saves every stream (file streams.json) and where
	// NewMemory restores them from, so that clients recover across a graceful
	// restart. NewMemory deletes the file as it loads it: after a crash (no
	// Close) every channel starts with a new epoch. The directory is created
	// if needed. Empty means nothing is read or written. One broker at a
	// time may use a directory.
	DataDir string
	// Logger receives problems with DataDir: a file that could not be loaded
	// and was set aside, a directory that cannot be written. Nil discards.
	Logger *slog.Logger
}

// Memory is the broker of a single node: channel streams live in this
// process and publications are delivered to its Run. Create it with
// NewMemory; the zero value is not usable. All methods are safe for
// concurrent use.
//
// Publishes to one channel are serialized, and deliver is called while the
// channel is locked, in offset order. deliver must therefore return quickly
// and must not call the broker for the same channel.
//
// A channel exists from its first use (Publish, Position, History,
// Subscribe). A channel that is not subscribed and has had no publication
// and no Unsubscribe for longer than its history TTL is dropped: its
// history and idempotency keys have expired by then, so only its offset is
// lost, and its next use starts a new stream with a new epoch.
type Memory struct {
	history  historyConfig
	dataDir  string
	log      *slog.Logger
	interval time.Duration // between sweeps

	mu       sync.RWMutex
	channels map[string]*memStream

	run       atomic.Pointer[runner]
	closed    atomic.Bool
	done      chan struct{} // closed by Close
	swept     chan struct{} // closed when the sweeper has stopped
	closeOnce sync.Once
	closeErr  error
}

type runner struct{ deliver func(Publication) }

// historyConfig resolves a channel's history bounds from its namespace.
type historyConfig struct {
	def HistoryOptions
	ns  map[string]HistoryOptions
}

func (c *historyConfig) forChannel(channel string) HistoryOptions {
	if o, ok := c.ns[protocol.Namespace(channel)]; ok {
		return o
	}
	return c.def
}

// minTTL is the shortest TTL of any channel.
func (c *historyConfig) minTTL() time.Duration {
	ttl := c.def.TTL
	for _, o := range c.ns {
		ttl = min(ttl, o.TTL)
	}
	return ttl
}

// Sweep interval bounds; see sweepLoop.
const (
	minSweepInterval = 100 * time.Millisecond
	maxSweepInterval = time.Minute
)

// NewMemory returns a memory broker configured by opts (nil means defaults).
// With opts.DataDir set it restores the streams a previous Close saved
// there, and deletes the file at once (see MemoryOptions.DataDir), so that
// a later crash restarts every channel with a new epoch instead of replaying
// a stale stream. An unreadable or corrupt file is renamed aside and
// logged, never fatal. Call Close to stop the broker's background sweeper
// and to save the streams.
func NewMemory(opts *MemoryOptions) *Memory {
	if opts == nil {
		opts = &MemoryOptions{}
	}
	m := &Memory{
		history:  historyConfig{def: opts.History.WithDefaults()},
		dataDir:  opts.DataDir,
		log:      opts.Logger,
		channels: make(map[string]*memStream),
		done:     make(chan struct{}),
		swept:    make(chan struct{}),
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if len(opts.Namespaces) > 0 {
		m.history.ns = make(map[string]HistoryOptions, len(opts.Namespaces))
		for ns, o := range opts.Namespaces {
			if o.Size <= 0 {
				o.Size = m.history.def.Size
			}
			if o.TTL <= 0 {
				o.TTL = m.history.def.TTL
			}
			m.history.ns[ns] = o
		}
	}
	m.interval = min(max(m.history.minTTL()/2, minSweepInterval), maxSweepInterval)
	if m.dataDir != "" {
		m.restore()
	}
	go m.sweepLoop()
	return m
}

// Publish implements Broker. data is copied. A publish whose non-empty key
// was already used on the channel within the history TTL stores and
// delivers nothing and returns the earlier publication's position.
func (m *Memory) Publish(ctx context.Context, channel string, data []byte, opts PublishOptions) (StreamPosition, error) {
	if m.closed.Load() {
		return StreamPosition{}, ErrClosed
	}
	s, now := m.lock(channel)
	defer s.mu.Unlock()
	// Checked again under the channel lock so that Close saves every
	// publish that succeeded.
	if m.closed.Load() {
		return StreamPosition{}, ErrClosed
	}
	if opts.Key != "" {
		if offset, ok := s.lookupKey(opts.Key, now); ok {
			return StreamPosition{Epoch: s.epoch, Offset: offset}, nil
		}
	}
	data = bytes.Clone(data)
	s.append(data, opts.Key, now)
	if s.subscribed {
		if r := m.run.Load(); r != nil {
			r.deliver(Publication{Channel: channel, Epoch: s.epoch, Offset: s.offset, Data: data})
		}
	}
	return StreamPosition{Epoch: s.epoch, Offset: s.offset}, nil
}

// Position implements Broker.
func (m *Memory) Position(ctx context.Context, channel string) (StreamPosition, error) {
	if m.closed.Load() {
		return StreamPosition{}, ErrClosed
	}
	s, _ := m.lock(channel)
	defer s.mu.Unlock()
	return StreamPosition{Epoch: s.epoch, Offset: s.offset}, nil
}

// History implements Broker. since.Offset equal to the current offset
// returns no publication and no error; an offset beyond it, or an epoch
// that is not the current one (the zero position included), returns
// ErrUnrecoverable. The returned publications share their Data with the
// broker's history: callers must not modify it.
func (m *Memory) History(ctx context.Context, channel string, since StreamPosition, limit int) ([]Publication, StreamPosition, error) {
	if m.closed.Load() {
		return nil, StreamPosition{}, ErrClosed
	}
	s, now := m.lock(channel)
	defer s.mu.Unlock()
	s.trim(now)
	pos := StreamPosition{Epoch: s.epoch, Offset: s.offset}
	if since.Epoch != s.epoch || since.Offset > s.offset || s.offset-since.Offset > uint64(s.hist.n) {
		return nil, pos, ErrUnrecoverable
	}
	missed := int(s.offset - since.Offset)
	n := missed
	if limit > 0 {
		n = min(n, limit)
	}
	if n == 0 {
		return nil, pos, nil
	}
	pubs := make([]Publication, n)
	first := s.hist.n - missed
	for i := range pubs {
		pubs[i] = Publication{Channel: channel, Epoch: s.epoch, Offset: since.Offset + 1 + uint64(i), Data: s.hist.at(first + i).data}
	}
	return pubs, pos, nil
}

// Subscribe implements Broker. A subscribed channel is never dropped.
func (m *Memory) Subscribe(ctx context.Context, channel string) error {
	if m.closed.Load() {
		return ErrClosed
	}
	s, _ := m.lock(channel)
	s.subscribed = true
	s.mu.Unlock()
	return nil
}

// Unsubscribe implements Broker. The channel's idle time counts from now.
func (m *Memory) Unsubscribe(ctx context.Context, channel string) error {
	if m.closed.Load() {
		return ErrClosed
	}
	m.mu.RLock()
	s := m.channels[channel]
	m.mu.RUnlock()
	if s == nil {
		return nil
	}
	s.mu.Lock()
	if s.subscribed {
		s.subscribed = false
		s.active = time.Now().UnixNano()
	}
	s.mu.Unlock()
	return nil
}

// Run implements Broker. Only one Run may be active at a time; another
// returns an error at once. When Run returns, deliver is no longer called.
func (m *Memory) Run(ctx context.Context, deliver func(Publication)) error {
	if deliver == nil {
		return errors.New("herald: broker: Run needs a deliver func")
	}
	if !m.run.CompareAndSwap(nil, &runner{deliver: deliver}) {
		return errors.New("herald: broker: Run is already active")
	}
	defer m.stopRun()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-m.done:
		return ErrClosed
	}
}

// stopRun detaches the deliver func and waits for the deliveries in flight:
// deliver runs under a channel lock, and every publish that takes a channel
// lock after it was released sees no runner.
func (m *Memory) stopRun() {
	m.run.Store(nil)
	for _, s := range m.streams(nil) {
		s.mu.Lock()
		s.mu.Unlock()
	}
}

// Close stops the broker: later calls return ErrClosed, Run returns, and
// with DataDir set every stream is saved. It returns the error of the save,
// the same on every call.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() {
		m.closed.Store(true)
		close(m.done)
		<-m.swept
		if m.dataDir != "" {
			m.closeErr = m.save()
		}
	})
	return m.closeErr
}

// Check implements Checker: the memory broker is ready until it is closed.
func (m *Memory) Check(ctx context.Context) error {
	if m.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Channels returns the number of channels the broker holds, for metrics.
func (m *Memory) Channels() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.channels)
}

// lock returns the channel's stream, created if needed, locked, and the
// current time. An idle stream found here is dropped and replaced, so its
// expiry does not depend on when the sweeper runs.
func (m *Memory) lock(channel string) (*memStream, int64) {
	for {
		m.mu.RLock()
		s := m.channels[channel]
		m.mu.RUnlock()
		fresh := s == nil
		if fresh {
			s = m.create(channel)
		}
		s.mu.Lock()
		now := time.Now().UnixNano()
		// A stream made for this call is in use, however short its TTL.
		if !s.dead && !fresh && s.idle(now) {
			s.dead = true
		}
		if !s.dead {
			return s, now
		}
		s.mu.Unlock()
		m.remove(s)
	}
}

func (m *Memory) create(channel string) *memStream {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.channels[channel]
	if s == nil {
		s = newStream(channel, NewEpoch(), m.history.forChannel(channel), time.Now().UnixNano())
		m.channels[channel] = s
	}
	return s
}

// remove deletes a dead stream from the map unless it was already replaced.
func (m *Memory) remove(s *memStream) {
	m.mu.Lock()
	if m.channels[s.channel] == s {
		delete(m.channels, s.channel)
	}
	m.mu.Unlock()
}

// streams appends every stream to buf.
func (m *Memory) streams(buf []*memStream) []*memStream {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, s := range m.channels {
		buf = append(buf, s)
	}
	return buf
}

// sweepLoop periodically reclaims memory: expired history entries and keys,
// and idle channels. Correctness does not depend on it (reads skip expired
// entries and lock drops idle streams on access); it bounds memory for
// channels nobody touches again. One goroutine, every half of the shortest
// TTL (clamped to [minSweepInterval, maxSweepInterval]), costs a map scan
// rather than a timer per channel.
func (m *Memory) sweepLoop() {
	defer close(m.swept)
	t := time.NewTicker(m.interval)
	defer t.Stop()
	var buf []*memStream
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
			buf = m.sweep(buf[:0])
		}
	}
}

func (m *Memory) sweep(buf []*memStream) []*memStream {
	buf = m.streams(buf)
	for _, s := range buf {
		s.mu.Lock()
		now := time.Now().UnixNano()
		s.trim(now)
		drop := !s.dead && s.idle(now)
		if drop {
			s.dead = true
		}
		s.mu.Unlock()
		if drop {
			m.remove(s)
		}
	}
	clear(buf)
	return buf
}

// NewEpoch returns a new random epoch string.
func NewEpoch() string {
	var b [6]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
