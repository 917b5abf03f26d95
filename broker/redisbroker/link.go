package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldhq/herald/broker"
)

// link is the broker's pub/sub connection to Redis and the set of channels
// the node subscribes to. Its loop keeps one connection up: it dials,
// subscribes every channel of the set, waits for the connection to fail,
// and starts again after a short backoff.
type link struct {
	b    *Broker
	stop chan struct{} // closed by close
	seed maphash.Seed
	// calls serializes Subscribe and Unsubscribe per channel (striped), so
	// that the last call decides whether Redis delivers the channel.
	calls [64]sync.Mutex

	mu       sync.RWMutex
	channels map[string]struct{} // subscribed: Subscribe and not Unsubscribe since
	conn     rueidis.DedicatedClient
	gen      uint64        // of conn; grows with every connection
	up       bool          // conn subscribes every channel of the set
	changed  chan struct{} // closed and replaced when up or conn changes

	// inbox carries publications from the connection's reader to
	// deliverLoop, which delivers what has arrived in batches.
	inbox chan received
}

// received is a publication read from the pub/sub connection of
// generation gen.
type received struct {
	gen uint64
	p   broker.Publication
}

// Reconnection backoff of the pub/sub connection.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
	// subscribeBatch is the most channels one SUBSCRIBE names when a
	// connection subscribes its whole set.
	subscribeBatch = 500
	// inboxSize is how many publications read from Redis may wait for
	// deliverLoop; past that the reader waits, and Redis buffers.
	inboxSize = 1024
	// maxBatch is the most publications one delivery holds: the node
	// queues them all before writing any, which takes about 0.2 µs per
	// subscriber for each, so it bounds how long the first waits.
	maxBatch = 32
)

func newLink(b *Broker) *link {
	return &link{b: b, stop: make(chan struct{}), seed: maphash.MakeSeed(), channels: make(map[string]struct{}), changed: make(chan struct{}),
		inbox: make(chan received, inboxSize)}
}

// lockCalls locks the Subscribe and Unsubscribe calls of channel.
func (l *link) lockCalls(channel string) *sync.Mutex {
	mu := &l.calls[maphash.String(l.seed, channel)%uint64(len(l.calls))]
	mu.Lock()
	return mu
}

func (l *link) close() { close(l.stop) }

// loop keeps the pub/sub connection up until close.
func (l *link) loop() {
	defer l.b.stopped.Done()
	lost := false // the link was up and failed
	for attempt := 0; ; attempt++ {
		dc, _ := l.b.client.Dedicate() // dc.Close releases it
		failed, err := l.connect(dc)
		if err == nil {
			if lost {
				l.b.log.Info("redis pub/sub connection restored", "channels", l.count())
				lost = false
			}
			attempt = 0
			select {
			case err = <-failed:
				l.b.log.Warn("redis pub/sub connection lost; reconnecting", "err", err)
				lost = true
			case <-l.stop:
			}
		} else {
			l.b.log.Debug("redis pub/sub connection failed", "err", err)
		}
		l.setDown()
		dc.Close()
		select {
		case <-l.stop:
			return
		default:
		}
		d := min(minBackoff<<min(attempt, 8), maxBackoff)
		select {
		case <-l.stop:
			return
		case <-time.After(d/2 + rand.N(d/2+1)):
		}
	}
}

// connect makes dc the link's connection and subscribes it to every
// channel of the set. It returns the channel that reports dc's failure.
func (l *link) connect(dc rueidis.DedicatedClient) (<-chan error, error) {
	l.mu.Lock()
	l.gen++
	gen := l.gen
	l.mu.Unlock()
	failed := dc.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage: func(m rueidis.PubSubMessage) { l.onMessage(gen, m) },
	})
	if err := l.do(dc, dc.B().Ping().Build()); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.conn = dc
	l.signalLocked()
	subscribed := make([]string, 0, len(l.channels))
	for ch := range l.channels {
		subscribed = append(subscribed, l.b.pubPrefix+ch)
	}
	l.mu.Unlock()
	for rest := subscribed; len(rest) > 0; {
		n := min(len(rest), subscribeBatch)
		if err := l.do(dc, dc.B().Subscribe().Channel(rest[:n]...).Build()); err != nil {
			return nil, err
		}
		rest = rest[n:]
	}
	l.mu.Lock()
	l.up = true
	l.signalLocked()
	var dropped []string
	for _, name := range subscribed {
		if _, ok := l.channels[strings.TrimPrefix(name, l.b.pubPrefix)]; !ok {
			dropped = append(dropped, name)
		}
	}
	l.mu.Unlock()
	if len(dropped) > 0 {
		// Unsubscribed while this connection subscribed them.
		l.do(dc, dc.B().Unsubscribe().Channel(dropped...).Build())
	}
	return failed, nil
}

// do runs one command on dc within the broker's timeout.
func (l *link) do(dc rueidis.DedicatedClient, cmd rueidis.Completed) error {
	ctx, cancel := l.b.opContext(context.Background())
	defer cancel()
	return dc.Do(ctx, cmd).Error()
}

// setDown forgets the connection.
func (l *link) setDown() {
	l.mu.Lock()
	l.conn, l.up = nil, false
	l.signalLocked()
	l.mu.Unlock()
}

func (l *link) signalLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *link) isUp() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.up
}

func (l *link) count() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.channels)
}

// waitUp waits until the link is up, at most d.
func (l *link) waitUp(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	_, _, err := l.upConn(ctx)
	return err
}

// upConn waits until the link is up and returns its connection.
func (l *link) upConn(ctx context.Context) (rueidis.DedicatedClient, uint64, error) {
	for {
		l.mu.RLock()
		conn, gen, up, changed := l.conn, l.gen, l.up, l.changed
		l.mu.RUnlock()
		if up {
			return conn, gen, nil
		}
		select {
		case <-changed:
		case <-l.stop:
			return nil, 0, broker.ErrClosed
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("%w: redis pub/sub connection is down", broker.ErrUnavailable)
		}
	}
}

// Subscribe implements broker.Broker: it returns once Redis confirmed the
// subscription of the node's pub/sub connection, so every publication made
// after it returns is delivered (unless that connection fails in between;
// see Broker). While the connection is down it waits for it up to
// Options.Timeout, then fails with an error wrapping
// broker.ErrUnavailable. Even then the channel stays in the node's set,
// which every new pub/sub connection subscribes, until Unsubscribe: a
// caller that gives up on the channel unsubscribes, as the server does
// when no local subscriber is left. Calls of Subscribe and Unsubscribe for
// one channel take effect one after another: the last one decides.
func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	l := b.link
	defer l.lockCalls(channel).Unlock()
	l.mu.Lock()
	l.channels[channel] = struct{}{}
	l.mu.Unlock()
	return l.subscribe(ctx, channel)
}

// subscribe subscribes the link's connection to channel. A connection that
// fails meanwhile is replaced by one that subscribes the whole set, but
// only a confirmation on the connection that is up proves the
// subscription, so subscribe tries again on the new one.
func (l *link) subscribe(ctx context.Context, channel string) error {
	ctx, cancel := l.b.opContext(ctx)
	defer cancel()
	for {
		conn, gen, err := l.upConn(ctx)
		if err != nil {
			return err
		}
		err = conn.Do(ctx, conn.B().Subscribe().Channel(l.b.pubPrefix+channel).Build()).Error()
		if err == nil {
			return nil
		}
		l.mu.RLock()
		same := l.gen == gen && l.up
		l.mu.RUnlock()
		if same || ctx.Err() != nil {
			return l.b.wrap(ctx, "subscribe", err)
		}
	}
}

// Unsubscribe implements broker.Broker. Publications made after it returns
// are not delivered. An error (Redis did not confirm) only means that the
// node may still receive the channel's traffic, which it drops.
func (b *Broker) Unsubscribe(ctx context.Context, channel string) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	l := b.link
	defer l.lockCalls(channel).Unlock()
	l.mu.Lock()
	delete(l.channels, channel)
	conn, gen := l.conn, l.gen
	l.mu.Unlock()
	if conn == nil {
		return nil // the next connection does not subscribe it
	}
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	err := conn.Do(ctx, conn.B().Unsubscribe().Channel(b.pubPrefix+channel).Build()).Error()
	if err != nil {
		l.mu.RLock()
		same := l.gen == gen
		l.mu.RUnlock()
		if same {
			return b.wrap(ctx, "unsubscribe", err)
		}
	}
	return nil
}

// onMessage hands a pub/sub message of connection gen, "OFFSET EPOCH TIME
// CLEN ULEN CLIENTUSERDATA" on the channel's pub/sub name, to deliverLoop.
func (l *link) onMessage(gen uint64, m rueidis.PubSubMessage) {
	channel, ok := strings.CutPrefix(m.Channel, l.b.pubPrefix)
	if !ok || l.b.presenceMessage(channel, m.Message) {
		return
	}
	p, err := decodeMessage(channel, m.Message)
	if err != nil {
		l.b.log.Error("redis pub/sub: bad message", "channel", channel, "err", err)
		return
	}
	select {
	case l.inbox <- received{gen, p}:
	case <-l.stop:
	}
}

// deliverLoop delivers the publications of the inbox until close: each
// call of run gets all that arrived while the previous one ran, so that a
// burst that Redis sends one message at a time reaches the node's
// connections as one batch. Messages of a channel no longer subscribed, or
// of a connection that was replaced, are dropped. The check and the
// delivery hold runMu, so a message the reader of a failed connection
// still held can neither overtake nor run alongside the messages of the
// next connection.
func (l *link) deliverLoop() {
	defer l.b.stopped.Done()
	var got []received
	var batch []broker.Publication
	for {
		select {
		case r := <-l.inbox:
			got, batch = l.deliver(append(got[:0], r), batch[:0])
			clear(got)
			clear(batch)
		case <-l.stop:
			return
		}
	}
}

// deliver takes what else the inbox holds into got, up to maxBatch in
// all, and runs those publications that are still wanted, collected in
// batch.
func (l *link) deliver(got []received, batch []broker.Publication) ([]received, []broker.Publication) {
	l.b.runMu.Lock()
	defer l.b.runMu.Unlock()
	for more := true; more && len(got) < maxBatch; {
		select {
		case r := <-l.inbox:
			got = append(got, r)
		default:
			more = false
		}
	}
	l.mu.RLock()
	for _, r := range got {
		if _, subscribed := l.channels[r.p.Channel]; subscribed && r.gen == l.gen {
			batch = append(batch, r.p)
		}
	}
	l.mu.RUnlock()
	if len(batch) > 0 && l.b.run != nil {
		l.b.run(batch)
	}
	return got, batch
}

// decodeMessage parses "OFFSET EPOCH TIME CLEN ULEN CLIENTUSERDATA" (see
// publishScript).
func decodeMessage(channel, msg string) (broker.Publication, error) {
	var f [5]string
	rest := msg
	ok := true
	for i := range f {
		var cut bool
		f[i], rest, cut = strings.Cut(rest, " ")
		ok = ok && cut
	}
	offset, err1 := strconv.ParseUint(f[0], 10, 64)
	ts, err2 := strconv.ParseInt(f[2], 10, 64)
	clen, err3 := strconv.Atoi(f[3])
	ulen, err4 := strconv.Atoi(f[4])
	if !ok || f[1] == "" || errors.Join(err1, err2, err3, err4) != nil || clen < 0 || ulen < 0 || clen+ulen > len(rest) {
		return broker.Publication{}, fmt.Errorf("not OFFSET EPOCH TIME CLEN ULEN CLIENTUSERDATA: %.60q", msg)
	}
	p := broker.Publication{Channel: channel, Epoch: f[1], Offset: offset, Time: ts, Data: []byte(rest[clen+ulen:])}
	p.From = broker.From{Client: rest[:clen], User: rest[clen : clen+ulen]}
	return p, nil
}

// keepAlive keeps alive the stream of every subscribed channel, so that
// the stream of a channel some node subscribes to never expires however
// quiet it is: a new epoch under live subscribers would reach their
// clients as a reset. A stream never published to lives for the history
// TTL only, so it is touched every quarter of the shortest history TTL; a
// published one, known from the touch's reply, every quarter of the
// stream TTL.
func (b *Broker) keepAlive() {
	defer b.stopped.Done()
	period := min(max(min(b.streamTTL, b.history.ShortestTTL())/4, 100*time.Millisecond), time.Hour)
	long := max(b.streamTTL/4, period)
	t := time.NewTicker(period)
	defer t.Stop()
	published := make(map[string]time.Time) // channel: when its published stream was last touched
	for {
		select {
		case <-b.done:
			return
		case now := <-t.C:
			b.touchSubscribed(published, now, long)
		}
	}
}

// touchSubscribed touches the streams of the subscribed channels, except
// those in published touched less than long before now, and records in
// published which streams were published to.
func (b *Broker) touchSubscribed(published map[string]time.Time, now time.Time, long time.Duration) {
	l := b.link
	l.mu.RLock()
	chans := make([]string, 0, len(l.channels))
	for ch := range l.channels {
		if at, ok := published[ch]; !ok || now.Sub(at) >= long {
			chans = append(chans, ch)
		}
	}
	for ch := range published {
		if _, ok := l.channels[ch]; !ok {
			delete(published, ch)
		}
	}
	l.mu.RUnlock()
	for len(chans) > 0 {
		n := min(len(chans), subscribeBatch)
		execs := make([]rueidis.LuaExec, n)
		for i, ch := range chans[:n] {
			h := b.history.For(ch)
			execs[i] = rueidis.LuaExec{
				Keys: b.streamKeys(ch)[:1],
				Args: []string{millis(max(b.streamTTL, h.TTL)), millis(h.TTL)},
			}
		}
		ctx, cancel := b.opContext(context.Background())
		for i, r := range touchScript.ExecMulti(ctx, b.client, execs...) {
			offset, err := r.AsInt64()
			if err != nil {
				b.log.Debug("redis: extending stream TTLs failed", "err", err)
				break
			}
			if offset > 0 {
				published[chans[i]] = now
			} else {
				delete(published, chans[i])
			}
		}
		cancel()
		chans = chans[n:]
	}
}
