package herald

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/broker"
)

// hub maps channels to their local subscribers and fans publications out.
// It keeps each subscriber's subscription, so that a delivery does not look
// it up in the session.
type hub struct {
	metrics  *metrics
	mu       sync.RWMutex
	channels map[string]map[*session]*subscription
	// joining holds, for a channel whose first local subscriber is still
	// subscribing the node at the broker, a channel closed when that is done.
	joining map[string]chan struct{}
	// held pools the lists of sessions whose writer a batch holds.
	held sync.Pool
}

func newHub(m *metrics) *hub {
	return &hub{metrics: m, channels: make(map[string]map[*session]*subscription), joining: make(map[string]chan struct{}),
		held: sync.Pool{New: func() any { return new([]*session) }}}
}

// add subscribes s to channel with sub and reports whether it is the
// channel's first local subscriber.
func (h *hub) add(channel string, s *session, sub *subscription) (first bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs, ok := h.channels[channel]
	if !ok {
		subs = make(map[*session]*subscription)
		h.channels[channel] = subs
		h.joining[channel] = make(chan struct{})
	}
	subs[s] = sub
	return !ok
}

// joined marks the node's broker subscription to channel as done (or
// failed): later subscribers stop waiting for it.
func (h *hub) joined(channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch, ok := h.joining[channel]; ok {
		close(ch)
		delete(h.joining, channel)
	}
}

// waitJoined waits until the node's broker subscription to channel, started
// by its first local subscriber, is in place: until then publications may
// not reach this node, and a later subscriber that read the stream position
// could miss them.
func (h *hub) waitJoined(ctx context.Context, channel string) error {
	h.mu.RLock()
	ch := h.joining[channel]
	h.mu.RUnlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// remove unsubscribes s from channel and reports whether the channel has no
// local subscriber left.
func (h *hub) remove(channel string, s *session) (last bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs, ok := h.channels[channel]
	if !ok {
		return false
	}
	delete(subs, s)
	if len(subs) > 0 {
		return false
	}
	delete(h.channels, channel)
	return true
}

// has reports whether channel has local subscribers.
func (h *hub) has(channel string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.channels[channel]) > 0
}

// deliver fans a publication out to the channel's local subscribers (see
// deliverBatch).
func (h *hub) deliver(p broker.Publication) {
	h.deliverBatch([]broker.Publication{p})
}

// deliverBatch fans publications out to their channels' local subscribers.
// Each message and its WebSocket frame are encoded once, and compressed at
// most once, and the same bytes are queued on every subscriber; queueing
// never blocks. A subscriber's
// writer starts once the whole batch is queued, so a connection that gets
// several of its publications writes them in one go.
func (h *hub) deliverBatch(ps []broker.Publication) {
	held := h.held.Get().(*[]*session)
	for _, p := range ps {
		*held = h.fanOut(p, *held)
	}
	for i, s := range *held {
		s.releaseWriter()
		(*held)[i] = nil
	}
	*held = (*held)[:0]
	h.held.Put(held)
}

// fanOut queues p on the channel's local subscribers and appends those
// whose writer it held to held.
func (h *hub) fanOut(p broker.Publication, held []*session) []*session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	subs := h.channels[p.Channel]
	if len(subs) == 0 {
		return held
	}
	start := time.Now()
	frame := sharedFrame{plain: messageFrame(p)}
	for s, sub := range subs {
		if s.deliver(sub, p, frame.to(s)) {
			held = append(held, s)
		}
	}
	h.metrics.delivered.Add(float64(len(subs)))
	observeSince(h.metrics.fanoutSeconds, start)
	return held
}

// count returns the number of channels with local subscribers.
func (h *hub) count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.channels)
}

// channelList returns the channels with local subscribers, sorted by name.
func (h *hub) channelList() []channelInfo {
	h.mu.RLock()
	list := make([]channelInfo, 0, len(h.channels))
	for ch, subs := range h.channels {
		list = append(list, channelInfo{ch, len(subs)})
	}
	h.mu.RUnlock()
	slices.SortFunc(list, func(a, b channelInfo) int { return strings.Compare(a.Channel, b.Channel) })
	return list
}
