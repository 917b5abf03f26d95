package redisbroker

import (
	"context"
	"fmt"
	"hash/maphash"
	"maps"
	"math/rand/v2"
	"slices"
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
}

// Reconnection backoff of the pub/sub connection.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
	// subscribeBatch is the most channels one SUBSCRIBE names when a
	// connection subscribes its whole set.
	subscribeBatch = 500
)

func newLink(b *Broker) *link {
	return &link{b: b, stop: make(chan struct{}), seed: maphash.MakeSeed(), channels: make(map[string]struct{}), changed: make(chan struct{})}
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
				l.b.stopped.Add(1)
				go l.catchUp()
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

// catchUp has the broker deliver what the channels of the set missed while
// the connection was down (see Broker.catchUp).
func (l *link) catchUp() {
	defer l.b.stopped.Done()
	l.mu.RLock()
	gen := l.gen
	l.mu.RUnlock()
	for _, ch := range l.held() {
		l.b.catchUp(ch, func() bool {
			l.mu.RLock()
			defer l.mu.RUnlock()
			_, subscribed := l.channels[ch]
			return subscribed && l.gen == gen
		})
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

// subscribe adds channel to the set and subscribes the link's connection
// to it (see Broker.Subscribe).
func (l *link) subscribe(ctx context.Context, channel string) error {
	defer l.lockCalls(channel).Unlock()
	l.b.seen.hold(channel)
	l.mu.Lock()
	l.channels[channel] = struct{}{}
	l.mu.Unlock()
	return l.confirm(ctx, channel)
}

// confirm subscribes the link's connection to channel. A connection that
// fails meanwhile is replaced by one that subscribes the whole set, but
// only a confirmation on the connection that is up proves the
// subscription, so confirm tries again on the new one.
func (l *link) confirm(ctx context.Context, channel string) error {
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

// unsubscribe removes channel from the set and unsubscribes the link's
// connection from it (see Broker.Unsubscribe).
func (l *link) unsubscribe(ctx context.Context, channel string) error {
	b := l.b
	defer l.lockCalls(channel).Unlock()
	b.seen.drop(channel)
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

// onMessage delivers a pub/sub message of connection gen, "OFFSET EPOCH
// TIME CLEN ULEN CLIENTUSERDATA" on the channel's pub/sub name, unless the
// channel is no longer subscribed or the connection was replaced by then
// (see deliverLive).
func (l *link) onMessage(gen uint64, m rueidis.PubSubMessage) {
	channel, ok := strings.CutPrefix(m.Channel, l.b.pubPrefix)
	if !ok {
		return
	}
	p, ok := l.b.decodeLive(channel, m.Message)
	if !ok {
		return
	}
	l.b.deliverLive(p, func() bool {
		l.mu.RLock()
		defer l.mu.RUnlock()
		_, subscribed := l.channels[channel]
		return subscribed && l.gen == gen
	})
}

// held returns the channels of the set.
func (l *link) held() []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return slices.Collect(maps.Keys(l.channels))
}
