package redisbroker

import (
	"context"
	"math"
	"strconv"
	"sync"

	"github.com/heraldhq/herald/broker"
)

// seen is what the node saw of the streams of the channels it subscribes
// to, so that a stream that went back is noticed and never hands out an
// offset twice.
//
// Redis replicates asynchronously: a replica promoted in its primary's
// place may hold a stream without its newest publications, which clients
// have already received. The run_id that each stream keeps (see
// streamPrelude) catches most such cases, but not a primary that resynced
// from such a replica and was promoted again, with its own run_id. So
// every script is given the newest position the node saw of its channel,
// and starts a new epoch when the stream is in that epoch but behind it
// (see streamArgs); and a live publication at an offset the node already
// received in the same epoch, which can only come from a stream that went
// back, is not delivered but makes the stream start a new epoch (renew):
// clients resubscribing are then told recovered:false instead of dropping
// the new publications as duplicates.
type seen struct {
	mu       sync.Mutex
	channels map[string]*seenPosition
}

type seenPosition struct {
	epoch string
	top   uint64 // the newest offset any reply or publication showed
	live  uint64 // the offset of the last publication received live
}

// wentBack is the top of an epoch known to have gone back: every script
// that finds the stream still in that epoch starts a new one, however far
// it got since.
const wentBack = math.MaxInt64

// hold starts keeping channel's position; drop stops. The feeds call them
// where they add and remove a channel, under its per-channel lock.
func (s *seen) hold(channel string) {
	s.mu.Lock()
	if s.channels[channel] == nil {
		s.channels[channel] = &seenPosition{}
	}
	s.mu.Unlock()
}

func (s *seen) drop(channel string) {
	s.mu.Lock()
	delete(s.channels, channel)
	s.mu.Unlock()
}

// reply records a position a script returned for channel. Replies of
// concurrent calls arrive in any order, so only a newer offset counts.
func (s *seen) reply(channel string, pos broker.StreamPosition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st := s.channels[channel]; {
	case st == nil:
	case st.epoch != pos.Epoch:
		*st = seenPosition{epoch: pos.Epoch, top: pos.Offset}
	default:
		st.top = max(st.top, pos.Offset)
	}
}

// live records a publication received by pub/sub, which arrive in the
// order Redis made them, and reports false when its stream went back: the
// node already received its offset in its epoch.
func (s *seen) live(p broker.Publication) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st := s.channels[p.Channel]; {
	case st == nil:
	case st.epoch != p.Epoch:
		*st = seenPosition{epoch: p.Epoch, top: p.Offset, live: p.Offset}
	case p.Offset <= st.live:
		st.top = wentBack
		return false
	default:
		st.live, st.top = p.Offset, max(st.top, p.Offset)
	}
	return true
}

// replayed records a publication read from history after the feed was
// down (catchUp) and reports whether it is still to be delivered: it is in
// the epoch the node saw and after the last one received live.
func (s *seen) replayed(p broker.Publication) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.channels[p.Channel]
	if st == nil || st.epoch != p.Epoch || p.Offset <= st.live {
		return false
	}
	st.live, st.top = p.Offset, max(st.top, p.Offset)
	return true
}

// lastLive returns the position of the last publication of channel
// received live (offset 0 when none was), false when the node knows no
// epoch of it.
func (s *seen) lastLive(channel string) (broker.StreamPosition, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.channels[channel]
	if st == nil || st.epoch == "" {
		return broker.StreamPosition{}, false
	}
	return broker.StreamPosition{Epoch: st.epoch, Offset: st.live}, true
}

// floor returns " EPOCH OFFSET", the newest position the node saw of
// channel, or "" when it has none, to follow the epoch a script proposes.
func (s *seen) floor(channel string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.channels[channel]
	if st == nil || st.epoch == "" {
		return ""
	}
	return " " + st.epoch + " " + strconv.FormatUint(st.top, 10)
}

// renew makes the stream of p.Channel, which went back (live reported
// false for p), start a new epoch. Should Redis not answer, the next
// script on the channel does it.
func (b *Broker) renew(p broker.Publication) {
	pos, err := b.Position(context.Background(), p.Channel)
	if err != nil {
		b.log.Error("redis: a stream went back; starting a new epoch failed", "channel", p.Channel, "epoch", p.Epoch, "offset", p.Offset, "err", err)
		return
	}
	b.log.Warn("redis: a stream went back (a failover lost publications); it starts a new epoch", "channel", p.Channel, "epoch", p.Epoch, "offset", p.Offset, "new_epoch", pos.Epoch)
}
