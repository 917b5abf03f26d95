package herald

import (
	"context"
	"errors"
	"slices"
	"strconv"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/protocol"
)

// subscription is one channel of one session. While it is being set up
// (recovering), live publications are held in pending; afterwards they are
// queued directly. last is the newest offset queued for the client, so a
// publication is never sent twice.
type subscription struct {
	channel      string
	recovering   bool
	pending      []broker.Publication
	pendingBytes int
	epoch        string
	last         uint64
}

// deliver queues a live publication of sub for the client. Called by the
// hub, until dropSubscription removed sub from it.
func (s *session) deliver(sub *subscription, p broker.Publication, frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case sub.recovering:
		sub.pending = append(sub.pending, p)
		sub.pendingBytes += len(frame)
		if sub.pendingBytes > s.srv.opts.SendQueueBytes {
			s.dropAndCloseLocked(protocol.CloseSlowConsumer, "send queue overflow during recovery")
		}
	case sub.epoch != "" && p.Epoch != sub.epoch:
		// The broker lost the stream and started it anew (a Redis restart
		// without persistence, say). Offsets restarted, so passing messages
		// on would look like duplicates to the client. Closing makes it
		// reconnect and resubscribe with since, which answers
		// recovered:false and tells the application to reload.
		s.closeLocked(protocol.CloseServiceRestart, "stream of "+p.Channel+" was reset")
	case p.Offset <= sub.last:
	default:
		sub.epoch, sub.last = p.Epoch, p.Offset
		s.enqueueLocked(frame)
	}
}

// subscribe follows PROTOCOL.md's Recovery section: it joins the live stream
// first (holding its publications), then reads the position or the history,
// and queues the reply, the missed publications and the held live ones,
// each offset once. Subscribing again to a held channel restarts recovery
// from the new since, which is how a client repairs a gap.
func (s *session) subscribe(ctx context.Context, req *protocol.Subscribe) {
	ch := req.Channel
	if e := s.authorize(ActionSubscribe, ch); e != nil {
		e.ID = req.ID
		s.reply(e)
		return
	}
	s.mu.Lock()
	sub := s.subscriptionLocked(ch)
	held := sub != nil
	if !held && len(s.subs) >= s.srv.opts.MaxSubscriptions {
		s.mu.Unlock()
		s.replyError(req.ID, protocol.CodeLimitExceeded, "too many subscriptions on this connection")
		return
	}
	if !held {
		sub = &subscription{channel: ch}
		s.subs = append(s.subs, sub)
		s.srv.metrics.subscriptions.Inc()
	}
	sub.recovering, sub.pending, sub.pendingBytes = true, nil, 0
	s.mu.Unlock()

	if !held {
		var err error
		if s.srv.hub.add(ch, s, sub) {
			err = s.srv.broker.Subscribe(ctx, ch)
			s.srv.hub.joined(ch)
		} else {
			err = s.srv.hub.waitJoined(ctx, ch)
		}
		if err != nil {
			s.dropSubscription(ch)
			s.brokerError(req.ID, "subscribe", err)
			return
		}
	}
	pubs, pos, recovered, err := s.catchUp(ctx, ch, req.Since)
	if err != nil {
		s.dropSubscription(ch)
		s.brokerError(req.ID, "subscribe", err)
		return
	}
	if recovered != nil {
		s.srv.metrics.recoveries.WithLabelValues(strconv.FormatBool(*recovered)).Inc()
	}
	if req.ID != 0 {
		s.send(&protocol.Subscribed{ID: req.ID, Channel: ch, Epoch: pos.Epoch, Offset: pos.Offset, Recovered: recovered})
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	last := pos.Offset
	if recovered != nil && *recovered {
		last = req.Since.Offset
	}
	sub.epoch, sub.last = pos.Epoch, last
	for _, p := range append(pubs, sub.pending...) {
		if p.Epoch == sub.epoch && p.Offset > sub.last {
			sub.last = p.Offset
			s.enqueueLocked(messageFrame(p))
		}
	}
	sub.recovering, sub.pending, sub.pendingBytes = false, nil, 0
}

// subscriptionLocked returns the connection's subscription to ch, or nil.
// s.mu must be held.
func (s *session) subscriptionLocked(ch string) *subscription {
	for _, sub := range s.subs {
		if sub.channel == ch {
			return sub
		}
	}
	return nil
}

// catchUp returns the publications a subscribe must replay and the stream
// position. recovered is nil without since.
func (s *session) catchUp(ctx context.Context, ch string, since *protocol.StreamPosition) ([]broker.Publication, broker.StreamPosition, *bool, error) {
	if since == nil {
		pos, err := s.srv.broker.Position(ctx, ch)
		return nil, pos, nil, err
	}
	pubs, pos, err := s.srv.broker.History(ctx, ch, *since, 0)
	recovered := err == nil
	if errors.Is(err, broker.ErrUnrecoverable) {
		pubs, err = nil, nil
	}
	return pubs, pos, &recovered, err
}

func (s *session) unsubscribe(ctx context.Context, req *protocol.Unsubscribe) {
	s.mu.Lock()
	held := s.subscriptionLocked(req.Channel) != nil
	s.mu.Unlock()
	if !held {
		s.replyError(req.ID, protocol.CodeNotSubscribed, "not subscribed to "+req.Channel)
		return
	}
	s.dropSubscription(req.Channel)
	if req.ID != 0 {
		s.send(&protocol.Unsubscribed{ID: req.ID, Channel: req.Channel})
	}
}

// dropSubscription removes a subscription from the session and the hub, and
// tells the broker when no local subscriber is left.
func (s *session) dropSubscription(ch string) {
	s.mu.Lock()
	if i := slices.IndexFunc(s.subs, func(sub *subscription) bool { return sub.channel == ch }); i >= 0 {
		s.subs = slices.Delete(s.subs, i, i+1)
		s.srv.metrics.subscriptions.Dec()
	}
	s.mu.Unlock()
	if s.srv.hub.remove(ch, s) {
		s.srv.brokerUnsubscribe(ch)
	}
}

// brokerUnsubscribe tells the broker the node no longer wants ch. A session
// may have subscribed to ch while the call was under way, and its own
// Subscribe may have completed first; the node then subscribes again, so it
// never stays unsubscribed from a channel it holds. (A publication that
// slipped through in between shows as a gap in offsets, which clients repair
// by recovery.)
func (srv *Server) brokerUnsubscribe(ch string) {
	if err := srv.broker.Unsubscribe(srv.ctx, ch); err != nil {
		srv.log.Warn("broker unsubscribe failed", "channel", ch, "err", err)
	}
	if srv.hub.has(ch) {
		if err := srv.broker.Subscribe(srv.ctx, ch); err != nil {
			srv.log.Warn("broker resubscribe failed", "channel", ch, "err", err)
		}
	}
}

func (s *session) unsubscribeAll() {
	s.mu.Lock()
	chans := make([]string, 0, len(s.subs))
	for _, sub := range s.subs {
		chans = append(chans, sub.channel)
	}
	s.mu.Unlock()
	for _, ch := range chans {
		s.dropSubscription(ch)
	}
}
