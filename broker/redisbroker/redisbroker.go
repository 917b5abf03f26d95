// Package redisbroker is the Herald broker for several nodes: channel
// streams live in Redis, and publications reach every node subscribed to
// their channel through Redis pub/sub.
//
// Each publish runs one Lua script that, atomically, checks the
// idempotency key, assigns the next offset, appends the publication to the
// channel's history (a Redis stream bounded by count, bytes and age) and
// PUBLISHes it, so offsets, history and delivery always agree. A channel's
// epoch is stored next to its offset; when Redis loses the stream (a
// restart without persistence, eviction, expiry) the next use creates a new
// epoch, so an old position is refused rather than replayed wrongly.
//
// A Redis that reloaded its data from disk, or a replica promoted in its
// place, may hold a stream at an older offset than was published; the
// scripts notice it by Redis's run_id, which each stream keeps, and start
// a new epoch, so offsets are never handed out twice. Any Redis restart
// therefore starts a new epoch on every channel (see docs/OPERATIONS.md).
// The broker's Redis user needs the INFO command for this.
//
// The broker needs Redis 6.2 or later, standalone or behind Sentinel, or
// Redis 7 in cluster mode (see Options.URL). On Redis Cluster every key of
// a channel carries the channel as its hash tag, so a channel's scripts run
// on one shard, and publications travel by sharded pub/sub (SPUBLISH,
// SSUBSCRIBE) within that shard only.
//
// A promoted replica may lack the newest publications of a stream that
// its old primary acknowledged. Besides the run_id check, each node
// remembers the newest position it saw of every channel it subscribes to
// and passes it to the scripts, which start a new epoch when the stream
// is behind it; Options.Replicas makes a publish wait until replicas hold
// it.
//
// Every key it writes has a TTL, so a volatile-* maxmemory policy evicts
// streams under memory pressure, which clients then see as
// recovered:false; use noeviction, which makes publishes fail loudly
// instead when Redis is full.
//
// Keys, all under Options.Prefix (P) and tagged with the channel so that a
// channel's keys share a hash slot:
//
//	P stream:{CH}      hash: e = epoch, o = newest offset, r = run_id of the
//	                   Redis process that started the epoch
//	P history:{CH}     stream: entries o = offset, d = data; ID = publish time
//	P key:{CH}:KEY     string "OFFSET EPOCH": an idempotency key in use
//
// and the pub/sub channel P pub:DB:CH (P pub:{CH} on Redis Cluster, a
// shard channel) carries "OFFSET EPOCH DATA".
//
// Every error the package returns starts with "herald: redisbroker: ",
// except those that wrap a sentinel of package broker (ErrUnavailable,
// ErrClosed, ...), which start with the sentinel's text.
package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldhq/herald/broker"
)

// Options configure a Redis broker. The zero value connects to
// 127.0.0.1:6379, database 0, with the default history bounds.
type Options struct {
	// URL locates Redis: redis://[user:password@]host[:port][/db],
	// rediss:// for TLS, or unix://[user:password@]/path?db=N. When set,
	// Addr and DB are ignored. Timeout replaces the URL's dial_timeout
	// and write_timeout.
	//
	// Several hosts, redis://host1:port1,host2:port2,..., are seed nodes:
	// the broker learns the cluster from whichever answers. A Redis in
	// cluster mode is detected from a single host as well. With
	// ?master_set=NAME the hosts are Sentinels instead, and the broker
	// follows the primary they name through failovers.
	URL string
	// Addr is Redis's host:port when URL is empty. Empty means
	// "127.0.0.1:6379".
	Addr string
	// DB is the database number when URL is empty.
	DB int
	// Prefix starts every Redis key and pub/sub channel the broker uses.
	// Nodes that share a Redis, a database and a prefix are one service.
	// Empty means "herald:".
	Prefix string
	// History and Namespaces are the broker's broker.HistoryPolicy (its
	// Default and Namespaces): History bounds the history of every channel
	// whose namespace has no entry in Namespaces, with zero fields meaning
	// broker.DefaultHistorySize and broker.DefaultHistoryTTL; an entry of
	// Namespaces overrides it for one namespace, its zero fields taking
	// History's value. Every node of a service should use the same bounds.
	History    broker.HistoryOptions
	Namespaces map[string]broker.HistoryOptions
	// MaxHistoryBytes bounds the data one channel's history holds, on top
	// of the count and age bounds of History and Namespaces: the oldest
	// publications leave history first, though the newest always stays
	// (so one publication larger than the bound is kept alone). A client
	// whose missed publications left history is told recovered:false.
	// Zero means DefaultMaxHistoryBytes (4 MiB); negative means no byte
	// bound. It bounds one channel only: bound the whole of Redis with
	// maxmemory (see docs/OPERATIONS.md).
	MaxHistoryBytes int
	// StreamTTL is how long Redis keeps a channel's epoch and offset after
	// the channel was last used (published to, read, or subscribed by a
	// node). A client that comes back within it to a quiet channel
	// recovers; after it the channel starts a new epoch. Zero means 24
	// hours; it is never shorter than the channel's history TTL. A
	// channel never published to (only read or subscribed) is kept for its
	// history TTL instead, or for as long as a node subscribes to it: a
	// client that subscribed at offset 0 has nothing to recover.
	StreamTTL time.Duration
	// Timeout bounds every Redis command and connection attempt: a Redis
	// that does not answer within it counts as unavailable, so that a
	// client's request fails quickly instead of hanging. Zero means 1
	// second.
	Timeout time.Duration
	// Logger receives the state of the pub/sub link (lost, restored). Nil
	// discards.
	Logger *slog.Logger
	// Replicas, when positive, makes every publish wait until that many
	// replicas of its Redis (or of its shard's primary) hold it (WAIT),
	// for up to ReplicaTimeout, before it is acknowledged; a publish they
	// do not confirm in time fails with an error wrapping
	// broker.ErrUnavailable (it may still have been made; a retry should
	// carry a key). A failover then loses no acknowledged publication,
	// unless every confirming replica is lost with the primary. Zero
	// acknowledges once the primary has it.
	Replicas int
	// ReplicaTimeout bounds the wait of Replicas. Zero means Timeout.
	ReplicaTimeout time.Duration
	// PresenceTTL is how long the node's presence members (see
	// broker.Presence) outlive its last refresh; it refreshes them every
	// 5/12 of it, so the members of a node that dies without closing
	// disappear within PresenceTTL. Zero means broker.DefaultPresenceTTL
	// (60 s, refreshed every 25 s).
	PresenceTTL time.Duration
}

// Defaults of Options.
const (
	DefaultAddr      = "127.0.0.1:6379"
	DefaultPrefix    = "herald:"
	DefaultStreamTTL = 24 * time.Hour
	DefaultTimeout   = time.Second
	// DefaultMaxHistoryBytes is the default of Options.MaxHistoryBytes.
	DefaultMaxHistoryBytes = 4 << 20
)

// Broker is a broker.Broker backed by Redis. Create it with New; the zero
// value is not usable. All methods are safe for concurrent use.
//
// Publications are delivered by one goroutine, in batches of those that
// have arrived, in offset order per channel; deliver must return quickly.
// When the pub/sub connection (on Redis Cluster, a channel's shard
// subscription) is lost, the broker reconnects, subscribes again to every
// subscribed channel on its own, and delivers from history what was
// published in between (catchUp); a live publication may overtake those,
// and the ones it skipped are left to the clients' recovery. A stream that
// Redis lost meanwhile starts a new epoch.
type Broker struct {
	client    rueidis.Client
	history   broker.HistoryPolicy // with defaults
	prefix    string
	pubPrefix string // prefix of pub/sub channel names
	// cluster: Redis Cluster, whose pub/sub is sharded (shards.go).
	cluster bool
	// replicas and replicaTimeout are Options.Replicas and ReplicaTimeout.
	replicas       int
	replicaTimeout time.Duration
	streamTTL      time.Duration
	timeout        time.Duration
	// maxHistoryBytes is the byte bound of each channel's history; -1 for
	// none.
	maxHistoryBytes int
	log             *slog.Logger

	feed     feed      // link.go, or shards.go on Redis Cluster
	seen     seen      // seen.go
	presence *presence // presence.go

	runMu sync.Mutex // held around every call of run
	run   func([]broker.Publication)
	inbox chan received // live publications on their way to deliverLoop (feed.go)

	closed    atomic.Bool
	done      chan struct{} // closed by Close
	stopped   sync.WaitGroup
	closeOnce sync.Once
}

// New connects to Redis and returns a broker once its pub/sub connection
// is established. It fails, with an error wrapping broker.ErrUnavailable,
// when Redis cannot be reached before ctx ends or within a few Timeouts.
// Call Close to release the connections.
func New(ctx context.Context, opts Options) (*Broker, error) {
	copt, err := clientOptions(opts)
	if err != nil {
		return nil, err
	}
	b := &Broker{
		history:         broker.HistoryPolicy{Default: opts.History, Namespaces: opts.Namespaces}.WithDefaults(),
		prefix:          opts.Prefix,
		timeout:         opts.Timeout,
		streamTTL:       opts.StreamTTL,
		log:             opts.Logger,
		maxHistoryBytes: opts.MaxHistoryBytes,
		replicas:        max(opts.Replicas, 0),
		replicaTimeout:  opts.ReplicaTimeout,
		done:            make(chan struct{}),
		inbox:           make(chan received, inboxSize),
		presence:        newPresence(opts.PresenceTTL),
		seen:            seen{channels: make(map[string]*seenPosition)},
	}
	if b.prefix == "" {
		b.prefix = DefaultPrefix
	}
	if b.timeout <= 0 {
		b.timeout = DefaultTimeout
	}
	if b.replicaTimeout <= 0 {
		b.replicaTimeout = b.timeout
	}
	if b.streamTTL <= 0 {
		b.streamTTL = DefaultStreamTTL
	}
	switch {
	case b.maxHistoryBytes == 0:
		b.maxHistoryBytes = DefaultMaxHistoryBytes
	case b.maxHistoryBytes < 0:
		b.maxHistoryBytes = -1
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.pubPrefix = b.prefix + "pub:" + strconv.Itoa(copt.SelectDB) + ":"
	copt.Dialer.Timeout = b.timeout
	copt.ConnWriteTimeout = 3 * b.timeout
	b.client, err = rueidis.NewClient(copt)
	if _, refused := rueidis.IsRedisErr(err); refused {
		return nil, fmt.Errorf("herald: redisbroker: %w", err) // a wrong password or database
	} else if err != nil {
		return nil, fmt.Errorf("%w: redis: %w", broker.ErrUnavailable, err)
	}
	b.cluster = b.client.Mode() == rueidis.ClientModeCluster
	if b.cluster && strings.ContainsAny(b.prefix, "{}") {
		b.client.Close()
		return nil, fmt.Errorf("herald: redisbroker: prefix %q: on Redis Cluster it may not hold { or }, which would change the hash tag of the keys", b.prefix)
	}
	b.stopped.Add(3)
	go b.deliverLoop()
	if b.cluster {
		b.feed = newShards(b)
	} else {
		l := newLink(b)
		b.feed = l
		b.stopped.Add(1)
		go l.loop()
	}
	go b.keepAlive()
	go b.refreshPresence()
	if err := b.feed.waitUp(ctx, 5*b.timeout); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// clientOptions translates opts into the Redis client's options.
func clientOptions(opts Options) (rueidis.ClientOption, error) {
	var copt rueidis.ClientOption
	if opts.URL != "" {
		var err error
		if copt, err = parseURL(opts.URL); err != nil {
			return copt, fmt.Errorf("herald: redisbroker: %w", err)
		}
	} else {
		addr := opts.Addr
		if addr == "" {
			addr = DefaultAddr
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return copt, fmt.Errorf("herald: redisbroker: address %q: %w", addr, err)
		}
		copt.InitAddress = []string{addr}
		copt.SelectDB = opts.DB
	}
	copt.DisableCache = true
	// Pipelining always runs the connection's reader, which notices at once
	// when Redis closes the connection (a restart, an idle timeout), so the
	// next command dials again instead of failing on the dead connection.
	copt.AlwaysPipelining = true
	copt.ClientName = "herald"
	return copt, nil
}

// parseURL parses a Redis URL whose host may list several seed nodes,
// host1:port1,host2:port2 (see Options.URL).
func parseURL(s string) (rueidis.ClientOption, error) {
	scheme, rest, _ := strings.Cut(s, "://")
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	auth, hosts, ok := strings.Cut(rest[:end], "@")
	if !ok {
		auth, hosts = "", auth
	} else {
		auth += "@"
	}
	first, more, _ := strings.Cut(hosts, ",")
	copt, err := rueidis.ParseURL(scheme + "://" + auth + first + rest[end:])
	if err != nil || more == "" {
		return copt, err
	}
	for _, h := range strings.Split(more, ",") {
		if _, _, err := net.SplitHostPort(h); err != nil {
			return copt, fmt.Errorf("redis URL: seed node %q: %w", h, err)
		}
		copt.InitAddress = append(copt.InitAddress, h)
	}
	return copt, nil
}

// Close stops the broker: later calls return broker.ErrClosed, Run
// returns, and the Redis connections are closed. The streams stay in
// Redis. Close is idempotent and returns nil.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.removeMembers()
		b.closed.Store(true)
		close(b.done)
		b.feed.close()
		b.stopped.Wait()
		b.client.Close()
	})
	return nil
}

// Check implements broker.Checker: it fails when Redis does not answer a
// PING or the pub/sub connection is down.
func (b *Broker) Check(ctx context.Context) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	if err := b.client.Do(ctx, b.client.B().Ping().Build()).Error(); err != nil {
		return b.wrap(ctx, "ping", err)
	}
	if !b.feed.isUp() {
		return fmt.Errorf("%w: redis pub/sub connection is down", broker.ErrUnavailable)
	}
	return nil
}

// Run implements broker.Broker. Only one Run may be active at a time;
// another returns broker.ErrRunning at once. When Run returns, deliver is no longer
// called.
func (b *Broker) Run(ctx context.Context, deliver func(broker.Publication)) error {
	if deliver == nil {
		return broker.ErrNoDeliver
	}
	return b.RunBatches(ctx, func(ps []broker.Publication) {
		for _, p := range ps {
			deliver(p)
		}
	})
}

// Running implements broker.RunReporter.
func (b *Broker) Running() bool {
	b.runMu.Lock()
	defer b.runMu.Unlock()
	return b.run != nil
}

// RunBatches implements broker.BatchRunner: deliver gets every publication
// read from the pub/sub connection since its last call (see deliverLoop).
func (b *Broker) RunBatches(ctx context.Context, deliver func([]broker.Publication)) error {
	if deliver == nil {
		return broker.ErrNoDeliver
	}
	if b.closed.Load() {
		return broker.ErrClosed
	}
	b.runMu.Lock()
	if b.run != nil {
		b.runMu.Unlock()
		return broker.ErrRunning
	}
	b.run = deliver
	b.runMu.Unlock()
	defer func() {
		b.runMu.Lock() // waits for the delivery in flight
		b.run = nil
		b.runMu.Unlock()
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-b.done:
		return broker.ErrClosed
	}
}

// opContext bounds one Redis call by Timeout.
func (b *Broker) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.timeout)
}

// wrap turns an error of a Redis call made with ctx (derived from the
// caller's context by opContext) into the broker's errors: ErrClosed after
// Close, the caller's own context error when the caller gave up, and
// ErrUnavailable when Redis could not be reached, did not answer in time,
// or answered that it cannot serve now.
func (b *Broker) wrap(ctx context.Context, op string, err error) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if rerr, ok := rueidis.IsRedisErr(err); ok && !unavailableReply(rerr) {
		return fmt.Errorf("herald: redisbroker: %s: %w", op, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.DeadlineExceeded) {
			return fmt.Errorf("herald: redisbroker: %s: %w", op, cause)
		}
	}
	return fmt.Errorf("%w: redis %s: %w", broker.ErrUnavailable, op, err)
}

// unavailableReply reports whether a Redis error reply means "not now"
// rather than a bug: loading the dataset, a busy script, a read-only
// replica, full memory.
func unavailableReply(err *rueidis.RedisError) bool {
	if err.IsLoading() || err.IsTryAgain() || err.IsClusterDown() {
		return true
	}
	msg := err.Error()
	for _, prefix := range []string{"BUSY ", "MASTERDOWN", "READONLY", "OOM", "NOREPLICAS"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}
