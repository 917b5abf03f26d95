package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldhq/herald/broker"
)

// feed is how the node receives the publications of the channels it
// subscribes to: one pub/sub connection to a single Redis (link.go), or
// sharded pub/sub on each channel's shard of Redis Cluster (shards.go).
type feed interface {
	// subscribe adds channel to the node's set and returns once Redis
	// confirmed the subscription; unsubscribe removes it. Calls for one
	// channel take effect one after another, and call seen.hold and
	// seen.drop in that order.
	subscribe(ctx context.Context, channel string) error
	unsubscribe(ctx context.Context, channel string) error
	// held returns the channels of the set.
	held() []string
	// isUp reports whether the feed receives every channel it can (for
	// Check); waitUp waits until it does, at most d.
	isUp() bool
	waitUp(ctx context.Context, d time.Duration) error
	close()
}

// Subscribe implements broker.Broker: it returns once Redis confirmed the
// subscription, so every publication made after it returns is delivered
// (unless the pub/sub connection fails in between; see Broker). While
// the connection is down it waits for it up to Options.Timeout, then fails
// with an error wrapping broker.ErrUnavailable. Even then the channel stays
// in the node's set, which every new pub/sub connection subscribes, until
// Unsubscribe: a caller that gives up on the channel unsubscribes, as the
// server does when no local subscriber is left. Calls of Subscribe and
// Unsubscribe for one channel take effect one after another: the last one
// decides.
func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	return b.feed.subscribe(ctx, channel)
}

// Unsubscribe implements broker.Broker. Publications made after it returns
// are not delivered. An error (Redis did not confirm) only means that the
// node may still receive the channel's traffic, which it drops.
func (b *Broker) Unsubscribe(ctx context.Context, channel string) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	return b.feed.unsubscribe(ctx, channel)
}

// pubName returns the pub/sub channel of channel: on Redis Cluster a shard
// channel in the slot of the channel's keys.
func (b *Broker) pubName(channel string) string {
	if b.cluster {
		return b.prefix + "pub:{" + channel + "}"
	}
	return b.pubPrefix + channel
}

// publishCommand is the command the scripts publish with.
func (b *Broker) publishCommand() string {
	if b.cluster {
		return "SPUBLISH"
	}
	return "PUBLISH"
}

// decodeLive parses a pub/sub message of channel. Joins and leaves go to
// presence; a publication is returned with true.
func (b *Broker) decodeLive(channel, msg string) (broker.Publication, bool) {
	if b.presenceMessage(channel, msg) {
		return broker.Publication{}, false
	}
	p, err := decodeMessage(channel, msg)
	if err != nil {
		b.log.Error("redis pub/sub: bad message", "channel", channel, "err", err)
		return broker.Publication{}, false
	}
	return p, true
}

// received is a live publication on its way to deliverLoop, with the
// check of whether the subscription it came by is still the current one;
// replayed marks one read from history by catchUp.
type received struct {
	p        broker.Publication
	current  func() bool
	replayed bool
}

const (
	// inboxSize is how many live publications may wait for deliverLoop;
	// past that the pub/sub readers wait, and Redis buffers.
	inboxSize = 1024
	// maxBatch is the most publications one delivery holds: the node
	// queues them all before writing any, which takes about 0.2 µs per
	// subscriber for each, so it bounds how long the first waits.
	maxBatch = 32
)

// deliverLive hands a live publication to deliverLoop. current reports
// whether the subscription it came by is still the current one; it runs
// at delivery, under runMu.
func (b *Broker) deliverLive(p broker.Publication, current func() bool) {
	select {
	case b.inbox <- received{p: p, current: current}:
	case <-b.done:
	}
}

// deliverLoop delivers the live publications until Close: each call of
// Run's deliver gets all that arrived while the previous one ran, so that
// a burst that Redis sends one message at a time reaches the node's
// connections as one batch.
func (b *Broker) deliverLoop() {
	defer b.stopped.Done()
	var got []received
	var batch []broker.Publication
	for {
		select {
		case r := <-b.inbox:
			got, batch = b.deliver(append(got[:0], r), batch[:0])
			clear(got)
			clear(batch)
		case <-b.done:
			return
		}
	}
}

// deliver takes what else the inbox holds into got, up to maxBatch in all,
// and passes those still wanted to Run's deliver, collected in batch. A
// publication whose subscription ended is dropped; one whose stream went
// back (see seen) renews the stream instead. The checks and the delivery
// hold runMu, so a publication a failed subscription still held can
// neither overtake nor run alongside those of the next one.
func (b *Broker) deliver(got []received, batch []broker.Publication) ([]received, []broker.Publication) {
	var back []broker.Publication
	b.runMu.Lock()
	for more := true; more && len(got) < maxBatch; {
		select {
		case r := <-b.inbox:
			got = append(got, r)
		default:
			more = false
		}
	}
	for _, r := range got {
		switch {
		case !r.current():
		case r.replayed:
			if b.seen.replayed(r.p) {
				batch = append(batch, r.p)
			}
		case !b.seen.live(r.p):
			back = append(back, r.p)
		default:
			batch = append(batch, r.p)
		}
	}
	if len(batch) > 0 && b.run != nil {
		b.run(batch)
	}
	b.runMu.Unlock()
	for _, p := range back {
		b.renew(p)
	}
	return got, batch
}

// catchUp delivers what the feed missed of channel while its subscription
// was down: the publications after the last one received live, read from
// history, so that a channel that goes quiet after the break does not keep
// its subscribers behind until its next publication. The feed calls it
// once the subscription is up again; a live publication that overtakes
// them is delivered first, and those it passed are left to the clients'
// recovery (see seen.replayed). current is as for deliverLive.
func (b *Broker) catchUp(channel string, current func() bool) {
	since, ok := b.seen.lastLive(channel)
	if !ok {
		return
	}
	pubs, _, err := b.History(context.Background(), channel, since, b.history.For(channel).Size)
	if err != nil {
		b.log.Warn("redis: publications missed while pub/sub was down could not be read; clients recover them at the next one", "channel", channel, "err", err)
		return
	}
	for _, p := range pubs {
		select {
		case b.inbox <- received{p: p, current: current, replayed: true}:
		case <-b.done:
			return
		}
	}
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
	held := b.feed.held()
	chans := make([]string, 0, len(held))
	subscribed := make(map[string]bool, len(held))
	for _, ch := range held {
		subscribed[ch] = true
		if at, ok := published[ch]; !ok || now.Sub(at) >= long {
			chans = append(chans, ch)
		}
	}
	for ch := range published {
		if !subscribed[ch] {
			delete(published, ch)
		}
	}
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
