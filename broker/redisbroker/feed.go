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

// deliverLive passes a live publication to Run's deliver, unless current
// reports that the subscription it came by ended, or its stream went back
// (see seen), which renews the stream instead. current and the delivery
// run under runMu, so a publication a failed subscription still holds can
// neither overtake nor run alongside those of the next one.
func (b *Broker) deliverLive(p broker.Publication, current func() bool) {
	b.runMu.Lock()
	ok := current()
	back := ok && !b.seen.live(p)
	if ok && !back && b.run != nil {
		b.run(p)
	}
	b.runMu.Unlock()
	if back {
		b.renew(p)
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
