package broker

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryOptions configure a memory broker. The zero value (or a nil pointer)
// keeps DefaultHistorySize publications for DefaultHistoryTTL per channel,
// at most DefaultMaxHistoryBytes of history and DefaultMaxChannels channels
// in all, and writes nothing to disk.
type MemoryOptions struct {
	// History and Namespaces are the broker's HistoryPolicy (its Default
	// and Namespaces): History bounds the history of every channel whose
	// namespace has no entry in Namespaces, with zero fields meaning
	// DefaultHistorySize and DefaultHistoryTTL; an entry of Namespaces
	// overrides it for one namespace, its zero fields taking History's value.
	History    HistoryOptions
	Namespaces map[string]HistoryOptions
	// MaxHistoryBytes bounds the history of all channels together, counted
	// as the length of every publication's data and idempotency key plus a
	// fixed overhead (40 bytes per history slot, 32 per publication and 32
	// more with the length of its ids for one from a connection, 128 per
	// key). A publish that takes the total over it drops the oldest
	// publications, with their keys, of the channels holding the most bytes,
	// until the total is a sixteenth under the bound: the largest channels
	// come down to a common level and smaller ones keep all of theirs. A
	// History since a dropped publication returns ErrUnrecoverable, and a
	// publish repeating a dropped key is published again. Zero means
	// DefaultMaxHistoryBytes; negative means no bound.
	MaxHistoryBytes int64
	// Fsync says when the write-ahead log is forced to disk (see
	// FsyncMode); the zero value is FsyncInterval.
	Fsync FsyncMode
	// FsyncInterval is the period of FsyncInterval. Zero means
	// DefaultFsyncInterval.
	FsyncInterval time.Duration
	// MaxChannels bounds the number of channels kept. A channel's first use
	// at the bound first drops the channels that lose nothing but their
	// position (expired, or not subscribed and holding no history or key:
	// their next use starts a new epoch), and returns ErrTooManyChannels
	// when none is left to drop. Zero means DefaultMaxChannels; negative
	// means no bound.
	MaxChannels int
	// DataDir is where the broker keeps its streams, so that clients
	// recover across a restart. Every publication is written to a
	// write-ahead log (DataDir/wal) before Publish returns, and Close saves
	// every stream to streams.json and deletes the log. NewMemory restores
	// the streams from streams.json when there is one (it moves the file
	// away before it reads it and deletes it once read), else by replaying
	// the log, which it truncates at its first damaged record; see
	// FsyncMode for which crashes keep the channels' epochs. It then writes
	// the streams as the first segment of a new log. While the broker runs,
	// the oldest segments (of 16 MiB) are deleted once all their records
	// have left history. Saved channels whose name or epoch is
	// invalid are skipped, and publications whose data is not JSON are
	// dropped with the older ones of their channel, each with a log line. A
	// file that cannot be read is renamed streams.json.corrupt-<time>; the
	// newest 3 are kept. The directory is created if needed. Empty means
	// nothing is read or written. One broker at a time may use a directory:
	// it holds a lock on the file "lock" in it until Close (not taken on
	// systems other than Unix and Windows).
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
	history     HistoryPolicy // with defaults
	maxBytes    int64         // <= 0: no bound
	maxChannels int           // <= 0: no bound
	dataDir     string
	dirLock     *os.File // holds the lock on dataDir
	fsync       FsyncMode
	fsyncEvery  time.Duration
	wal         *wal // nil without dataDir
	log         *slog.Logger
	interval    time.Duration // between sweeps

	mu       sync.RWMutex
	channels map[string]*memStream

	held      atomic.Int64 // bytes of history, see MaxHistoryBytes
	reserved  atomic.Int64 // bytes publishes under way are about to add
	evictMu   sync.Mutex   // one eviction at a time
	reclaimMu sync.Mutex   // one search for channels to drop at a time
	full      atomic.Bool  // no channel could be dropped; reset by the sweeper

	run       atomic.Pointer[runner]
	presence  LocalPresence // see memory_presence.go
	closed    atomic.Bool
	done      chan struct{} // closed by Close
	swept     chan struct{} // closed when the sweeper has stopped
	closeOnce sync.Once
	closeErr  error
}

type runner struct{ deliver func(Publication) }

// Defaults of MemoryOptions. 256 MiB of history fits a small server (1 GiB
// of memory leaves room for the connections) and holds the default
// 2-minute window of 1,000 publications of 1 KiB per second; without it,
// a single client publishing 64 KiB messages to new channels could make
// the node hold hundreds of megabytes. A channel costs about 250 bytes
// plus its name before any history, so 100,000 cost 25 to 50 MB.
const (
	DefaultMaxHistoryBytes = 256 << 20
	DefaultMaxChannels     = 100_000
)

// ErrTooManyChannels is returned for the first use of a channel when the
// broker holds as many channels as it may (MemoryOptions.MaxChannels). The
// server answers it with limit_exceeded.
var ErrTooManyChannels = errors.New("herald: broker: too many channels")

// Stats is what a broker holds, for metrics.
type Stats struct {
	HistoryBytes int64 // counted as MemoryOptions.MaxHistoryBytes says
	Channels     int
}

// StatsReporter is implemented by brokers that can report what they hold.
type StatsReporter interface {
	Stats() Stats
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
// logged, never fatal. A DataDir that another broker holds is logged, and
// the broker then neither reads nor writes it; OpenMemory returns that
// error instead. Call Close to stop the broker's background sweeper and to
// save the streams.
func NewMemory(opts *MemoryOptions) *Memory {
	m, err := open(opts)
	if errors.Is(err, ErrDataDirInUse) {
		m.log.Error("herald: broker data dir in use; streams will be neither restored nor saved", "err", err)
		m.dataDir = ""
	} else if err != nil {
		m.log.Error("herald: broker data dir unusable; streams will not be saved", "dir", m.dataDir, "err", err)
	}
	m.start()
	return m
}

// OpenMemory is NewMemory, but returns an error, and no broker, when
// opts.DataDir cannot be created or another broker holds it
// (ErrDataDirInUse): what a server should refuse to start with.
func OpenMemory(opts *MemoryOptions) (*Memory, error) {
	m, err := open(opts)
	if err != nil {
		return nil, err
	}
	m.start()
	return m, nil
}

// open makes a broker and opens its data dir, without starting it.
func open(opts *MemoryOptions) (*Memory, error) {
	if opts == nil {
		opts = &MemoryOptions{}
	}
	m := &Memory{
		history:     HistoryPolicy{Default: opts.History, Namespaces: opts.Namespaces}.WithDefaults(),
		maxBytes:    opts.MaxHistoryBytes,
		maxChannels: opts.MaxChannels,
		dataDir:     opts.DataDir,
		fsync:       opts.Fsync,
		fsyncEvery:  cmp.Or(opts.FsyncInterval, DefaultFsyncInterval),
		log:         opts.Logger,
		channels:    make(map[string]*memStream),
		presence:    LocalPresence{channels: make(map[string]map[string]string)},
		done:        make(chan struct{}),
		swept:       make(chan struct{}),
	}
	if m.maxBytes == 0 {
		m.maxBytes = DefaultMaxHistoryBytes
	}
	if m.maxChannels == 0 {
		m.maxChannels = DefaultMaxChannels
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.interval = min(max(m.history.ShortestTTL()/2, minSweepInterval), maxSweepInterval)
	if m.dataDir != "" {
		if err := m.openDataDir(); err != nil {
			return m, err
		}
		m.evictIfOver()
	}
	return m, nil
}

func (m *Memory) start() { go m.sweepLoop() }

// Publish implements Broker. data is copied. A publish whose non-empty key
// was already used on the channel within the history TTL stores and
// delivers nothing and returns the earlier publication's position. A publish
// that takes the history over MaxHistoryBytes returns once the oldest
// history of the largest channels was dropped.
func (m *Memory) Publish(ctx context.Context, channel string, data []byte, opts PublishOptions) (StreamPosition, error) {
	// What the publication adds: its entry, its key, and the first slots of
	// a new channel's history ring.
	n := int64(len(data)) + entryOverhead + keyBytes(opts.Key) + 4*slotBytes + fromOverhead + int64(len(opts.From.Client)+len(opts.From.User))
	m.reserve(n)
	pos, err := m.publish(channel, data, opts)
	m.reserved.Add(-n)
	m.evictIfOver()
	return pos, err
}

func (m *Memory) publish(channel string, data []byte, opts PublishOptions) (StreamPosition, error) {
	s, now, err := m.lock(channel)
	if err != nil {
		return StreamPosition{}, err
	}
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
	from := fromPtr(opts.From)
	if err := m.logPublish(s, data, opts.Key, from, now); err != nil {
		return StreamPosition{}, err
	}
	s.append(data, opts.Key, from, now)
	if s.subscribed {
		if r := m.run.Load(); r != nil {
			r.deliver(Publication{Channel: channel, Epoch: s.epoch, Offset: s.offset, Data: data, Time: unixMilli(now), From: opts.From})
		}
	}
	return StreamPosition{Epoch: s.epoch, Offset: s.offset}, nil
}

// Position implements Broker.
func (m *Memory) Position(ctx context.Context, channel string) (StreamPosition, error) {
	s, _, err := m.lock(channel)
	if err != nil {
		return StreamPosition{}, err
	}
	defer s.mu.Unlock()
	return StreamPosition{Epoch: s.epoch, Offset: s.offset}, nil
}

// History implements Broker. since.Offset equal to the current offset
// returns no publication and no error; an offset beyond it, or an epoch
// that is not the current one (the zero position included), returns
// ErrUnrecoverable. The returned publications share their Data with the
// broker's history: callers must not modify it.
func (m *Memory) History(ctx context.Context, channel string, since StreamPosition, limit int) ([]Publication, StreamPosition, error) {
	s, now, err := m.lock(channel)
	if err != nil {
		return nil, StreamPosition{}, err
	}
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
		pubs[i] = s.publication(first+i, since.Offset+1+uint64(i))
	}
	return pubs, pos, nil
}

// Subscribe implements Broker. A subscribed channel is never dropped.
func (m *Memory) Subscribe(ctx context.Context, channel string) error {
	s, _, err := m.lock(channel)
	if err != nil {
		return err
	}
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
		m.full.Store(false) // s may be empty
	}
	s.mu.Unlock()
	return nil
}

// Run implements Broker. Only one Run may be active at a time; another
// returns ErrRunning at once. When Run returns, deliver is no longer called.
func (m *Memory) Run(ctx context.Context, deliver func(Publication)) error {
	if deliver == nil {
		return ErrNoDeliver
	}
	if !m.run.CompareAndSwap(nil, &runner{deliver: deliver}) {
		return ErrRunning
	}
	defer m.stopRun()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-m.done:
		return ErrClosed
	}
}

// Running implements RunReporter.
func (m *Memory) Running() bool { return m.run.Load() != nil }

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
			m.closeLog(m.closeErr == nil)
		}
		m.unlockDataDir()
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

// Stats implements StatsReporter.
func (m *Memory) Stats() Stats {
	return Stats{HistoryBytes: m.held.Load(), Channels: m.Channels()}
}

// lock returns the channel's stream, created if needed, locked, and the
// current time, or ErrClosed once the broker is closed. An idle stream
// found here is dropped and replaced, so its expiry does not depend on when
// the sweeper runs.
func (m *Memory) lock(channel string) (*memStream, int64, error) {
	if m.closed.Load() {
		return nil, 0, ErrClosed
	}
	for {
		m.mu.RLock()
		s := m.channels[channel]
		m.mu.RUnlock()
		fresh := s == nil
		if fresh {
			var err error
			if s, err = m.create(channel); err != nil {
				return nil, 0, err
			}
		}
		s.mu.Lock()
		now := time.Now().UnixNano()
		// A stream made for this call is in use, however short its TTL.
		if !s.dead && !fresh && s.idle(now) {
			s.kill()
		}
		if !s.dead {
			return s, now, nil
		}
		s.mu.Unlock()
		m.remove(s)
	}
}

// create returns the channel's stream, adding it if there is room for it
// or room can be made.
func (m *Memory) create(channel string) (*memStream, error) {
	for {
		m.mu.Lock()
		s := m.channels[channel]
		if s == nil && (m.maxChannels <= 0 || len(m.channels) < m.maxChannels) {
			s = newStream(channel, NewEpoch(), m.history.For(channel), time.Now().UnixNano(), &m.held)
			m.channels[channel] = s
		}
		m.mu.Unlock()
		if s != nil {
			return s, nil
		}
		if !m.reclaim() {
			return nil, ErrTooManyChannels
		}
	}
}

// reclaim makes room for a channel by dropping every stream that loses
// nothing but its position (see MaxChannels), and reports whether there is
// room. When there is none it says so at once until the sweeper has run or
// a channel was unsubscribed, so that a client knocking at the bound does
// not make every call scan all channels.
func (m *Memory) reclaim() bool {
	m.reclaimMu.Lock()
	defer m.reclaimMu.Unlock()
	if m.Channels() < m.maxChannels {
		return true
	}
	if m.full.Load() {
		return false
	}
	var dropped []*memStream
	for _, s := range m.streams(nil) {
		s.mu.Lock()
		if !s.dead && (s.idle(time.Now().UnixNano()) || s.empty()) {
			s.kill()
			dropped = append(dropped, s)
		}
		s.mu.Unlock()
	}
	for _, s := range dropped {
		m.remove(s)
	}
	if len(dropped) == 0 {
		m.full.Store(true)
		m.log.Warn("herald: broker holds the most channels it may; new channels are refused", "max_channels", m.maxChannels)
		return false
	}
	return true
}

// reserve counts n bytes that a publish is about to add, dropping history
// first when the history and the publishes under way would go over
// MaxHistoryBytes: concurrent publishes wait for the eviction instead of
// all adding to a history that is already full. When the publishes under
// way hold all the room, it waits for them; a publication larger than the
// bound on its own is counted anyway.
func (m *Memory) reserve(n int64) {
	for m.maxBytes > 0 {
		// Reservations are read before the history: a publish charges the
		// history before it gives its reservation back, so its bytes are
		// counted at least once.
		if r := m.reserved.Add(n); m.held.Load()+r <= m.maxBytes {
			return
		}
		m.reserved.Add(-n)
		m.evictMu.Lock()
		r := m.reserved.Load()
		total := m.held.Load() + r + n
		freed := int64(1)
		if total > m.maxBytes {
			freed = m.evict(total - (m.maxBytes - m.maxBytes/16))
		}
		m.evictMu.Unlock()
		if freed <= 0 {
			if m.reserved.Load() == 0 {
				break // one publication larger than the bound
			}
			runtime.Gosched() // the publishes under way hold the room: wait for them
		}
	}
	m.reserved.Add(n)
}

// evictIfOver brings the history back under MaxHistoryBytes when it is over.
func (m *Memory) evictIfOver() {
	if m.maxBytes <= 0 || m.held.Load() <= m.maxBytes {
		return
	}
	m.evictMu.Lock()
	defer m.evictMu.Unlock()
	if m.held.Load() > m.maxBytes {
		m.evict(m.held.Load() - (m.maxBytes - m.maxBytes/16))
	}
}

// evict drops at least need bytes of history, oldest publications first,
// from the channels holding the most, and returns what it dropped: they
// come down towards a common level, chosen as high as frees need, and
// channels under it keep all they hold.
func (m *Memory) evict(need int64) (freed int64) {
	type held struct {
		s     *memStream
		bytes int64
	}
	var all []held
	for _, s := range m.streams(nil) {
		s.mu.Lock()
		if s.bytes > 0 {
			all = append(all, held{s, s.bytes})
		}
		s.mu.Unlock()
	}
	slices.SortFunc(all, func(a, b held) int { return cmp.Compare(b.bytes, a.bytes) })
	// Bring the k largest down to level, the k-th being the first whose
	// level would free enough at or above the size of the next.
	var level, sum int64
	k := 0
	for k < len(all) {
		sum += all[k].bytes
		k++
		next := int64(0)
		if k < len(all) {
			next = all[k].bytes
		}
		if sum-int64(k)*next >= need {
			level = (sum - need) / int64(k)
			break
		}
	}
	// Publications are whole: when the level falls inside the only one of
	// channels of equal size, going all the way would empty every one of
	// them, so stop as soon as enough is freed.
	for _, h := range all[:k] {
		h.s.mu.Lock()
		for freed < need && !h.s.dead && h.s.bytes > level && !h.s.bare() {
			before := h.s.bytes
			h.s.evictOldest()
			freed += before - h.s.bytes
		}
		h.s.mu.Unlock()
	}
	return freed
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
			s.kill()
		}
		s.mu.Unlock()
		if drop {
			m.remove(s)
		}
	}
	clear(buf)
	m.full.Store(false)
	m.dropDeadSegments()
	return buf
}

// NewEpoch returns a new random epoch string.
func NewEpoch() string {
	var b [6]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
