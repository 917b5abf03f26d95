package herald

import (
	"context"
	"errors"
	"slices"
	"strconv"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/protocol"
)

// subscription is one channel of one session. last is the newest offset
// queued for the client, so a publication is never sent twice.
//
// While it is being set up (recovering), live publications are held in
// pending, as many as the send queue holds; past that they are dropped and
// the subscription is behind: they are read again from history, where a
// broker stores every publication before delivering it. Once the missed
// publications are known, the writer replays them (replaying): the backlog,
// then what pending held or history has, a piece at a time (replayNext),
// until the subscription is live.
type subscription struct {
	channel string
	epoch   string
	last    uint64

	recovering   bool
	replaying    bool // counted in session.replays
	behind       bool
	backlog      []broker.Publication
	pending      []broker.Publication
	pendingBytes int
	// gen changes whenever the replay is started anew or stopped, so that a
	// piece prepared without the lock for an older one is discarded.
	gen uint64
}

// deliver queues a live publication of sub for the client. Called by the
// hub, until dropSubscription removed sub from it. It reports whether it
// held the writer (holdWriterLocked): the hub then releases it once its
// batch is queued.
func (s *session) deliver(sub *subscription, p broker.Publication, frame []byte) (held bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case sub.recovering:
		s.holdLocked(sub, p, len(frame))
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
		held = s.holdWriterLocked()
		s.enqueueLocked(frame)
	}
	return held
}

// holdLocked keeps a live publication of a recovering subscription for
// after its replay, or drops it when the held ones would take more than the
// send queue holds: the subscription is then behind, and its replay reads
// them from history. s.mu must be held.
func (s *session) holdLocked(sub *subscription, p broker.Publication, size int) {
	switch {
	case sub.behind || s.closing:
	case sub.pendingBytes+size > s.srv.opts.SendQueueBytes:
		clear(sub.pending)
		sub.pending, sub.pendingBytes, sub.behind = nil, 0, true
	default:
		sub.pending = append(sub.pending, p)
		sub.pendingBytes += size
	}
}

// subscribe follows PROTOCOL.md's Recovery section: it joins the live stream
// first (holding its publications), then reads the position or the history,
// queues the reply, and hands the missed publications to replayLocked, which
// sends them and the held live ones, each offset once. Subscribing again to
// a held channel restarts recovery from the new since, which is how a client
// repairs a gap.
func (s *session) subscribe(ctx context.Context, req *protocol.Subscribe) {
	if e := s.authorize(ActionSubscribe, req.Channel); e != nil {
		e.ID = req.ID
		s.reply(e)
		return
	}
	if s.subscribeAllowed(req) {
		s.join(ctx, req, req.ID != 0)
	}
}

// join subscribes the connection to req's channel, which it may hold, and
// confirms with subscribed when confirm is set.
func (s *session) join(ctx context.Context, req *protocol.Subscribe, confirm bool) {
	ch := req.Channel
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
	s.stopReplayLocked(sub)
	sub.recovering = true
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
	pubs, pos, recovered, err := s.catchUp(ctx, ch, req.Since, req.Last)
	if err != nil {
		s.dropSubscription(ch)
		s.brokerError(req.ID, "subscribe", err)
		return
	}
	if recovered != nil && *recovered && !s.fitsSendQueue(pubs) {
		pubs, *recovered = nil, false
	}
	if recovered != nil {
		s.srv.metrics.recoveries.WithLabelValues(strconv.FormatBool(*recovered)).Inc()
	}
	s.joinPresence(ctx, ch, held)
	if confirm {
		s.send(&protocol.Subscribed{ID: req.ID, Channel: ch, Epoch: pos.Epoch, Offset: pos.Offset, Recovered: recovered})
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subscriptionLocked(ch) != sub {
		return // dropped meanwhile
	}
	sub.epoch, sub.last = pos.Epoch, pos.Offset
	if recovered != nil && *recovered {
		sub.last = req.Since.Offset
	}
	if recovered == nil && len(pubs) > 0 {
		sub.last = pubs[0].Offset - 1 // the backlog of last
	}
	s.replayLocked(sub, pubs)
}

// fitsSendQueue reports whether every publication of backlog fits in the
// send queue on its own. A backlog that does not could never be replayed:
// the client is told recovered:false instead of being closed with 4008 on
// every attempt.
func (s *session) fitsSendQueue(backlog []broker.Publication) bool {
	for _, p := range backlog {
		if messageFrameSize(p) > s.srv.opts.SendQueueBytes {
			return false
		}
	}
	return true
}

// replayLocked sends a recovering subscription's backlog, the publications
// after sub.last in offset order, then the live ones held meanwhile, and
// makes the subscription live. The writer queues them a piece at a time
// (replayNext); a subscription with nothing to replay is live at once.
// The replay owns backlog from then on. s.mu must be held.
func (s *session) replayLocked(sub *subscription, backlog []broker.Publication) {
	if s.closing {
		return
	}
	if len(backlog) == 0 && len(sub.pending) == 0 && !sub.behind {
		sub.recovering = false
		return
	}
	sub.backlog, sub.replaying = backlog, true
	s.replays++
	if !s.flushing {
		s.startWriterLocked()
	}
}

// stopReplayLocked abandons sub's recovery, if one is under way, and
// discards what it held. s.mu must be held.
func (s *session) stopReplayLocked(sub *subscription) {
	sub.gen++
	if sub.replaying {
		sub.replaying = false
		s.replays--
	}
	clear(sub.pending)
	sub.recovering, sub.behind = false, false
	sub.backlog, sub.pending, sub.pendingBytes = nil, nil, 0
}

// replayNext queues the next piece of the first subscription being
// replayed: the messages of its backlog that fit in half the send queue (at
// least one), or, with the backlog sent, what pending held, then what
// history has after the last offset sent when live messages were dropped.
// It ends the replay when nothing is left. The writer calls it when the
// queue is empty; frames are built and history is read without s.mu.
func (s *session) replayNext() {
	s.mu.Lock()
	sub := s.replayingLocked()
	if sub == nil { // cannot happen: replays counts the subscriptions replaying
		s.replays = 0
		s.mu.Unlock()
		return
	}
	if len(sub.backlog) == 0 {
		sub.backlog, sub.pending, sub.pendingBytes = sub.pending, nil, 0
	}
	if len(sub.backlog) == 0 && !sub.behind {
		sub.recovering, sub.replaying, sub.backlog = false, false, nil
		s.replays--
		s.mu.Unlock()
		return
	}
	gen, backlog := sub.gen, sub.backlog
	since := broker.StreamPosition{Epoch: sub.epoch, Offset: sub.last}
	budget := s.srv.opts.SendQueueBytes/2 - s.queued
	if len(backlog) == 0 {
		sub.behind = false // held from now on; history has the ones dropped
	}
	s.mu.Unlock()

	if len(backlog) == 0 {
		s.reread(sub, gen, since)
		return
	}
	frames, n, last := replayFrames(backlog, since, budget)
	for i, f := range frames {
		frames[i] = s.outgoing(f)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub.gen != gen {
		return
	}
	clear(sub.backlog[:n])
	sub.backlog, sub.last = sub.backlog[n:], last
	for _, f := range frames {
		s.enqueueLocked(f)
	}
}

// replayingLocked returns the first subscription being replayed. s.mu must
// be held.
func (s *session) replayingLocked() *subscription {
	for _, sub := range s.subs {
		if sub.replaying {
			return sub
		}
	}
	return nil
}

// replayFrames builds the message frames of backlog's publications after
// since, up to budget bytes of them but at least one, and returns them, how
// many publications of backlog they covered, and the newest offset sent.
func replayFrames(backlog []broker.Publication, since broker.StreamPosition, budget int) (frames [][]byte, n int, last uint64) {
	last = since.Offset
	size := 0
	for ; n < len(backlog); n++ {
		p := backlog[n]
		if p.Epoch != since.Epoch || p.Offset <= last {
			continue
		}
		if len(frames) > 0 && size+messageFrameSize(p) > budget {
			break
		}
		f := messageFrame(p)
		frames = append(frames, f)
		size += len(f)
		last = p.Offset
	}
	return frames, n, last
}

// reread reads sub's history after since into its backlog, for the live
// publications it dropped. When history no longer has them, the client
// fell too far behind (4008) or the stream was reset (1012); when the
// broker cannot answer, it is told to come back later (1013). Either way it
// recovers with since on its next connection.
func (s *session) reread(sub *subscription, gen uint64, since broker.StreamPosition) {
	ctx, cancel := context.WithTimeout(s.srv.ctx, s.srv.opts.WriteTimeout)
	pubs, pos, err := s.srv.broker.History(ctx, sub.channel, since, 0)
	cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case sub.gen != gen:
	case err == nil:
		sub.backlog = pubs
	case errors.Is(err, broker.ErrUnrecoverable) && pos.Epoch != since.Epoch:
		s.closeLocked(protocol.CloseServiceRestart, "stream of "+sub.channel+" was reset")
	case errors.Is(err, broker.ErrUnrecoverable):
		s.closeLocked(protocol.CloseSlowConsumer, "fell behind history during recovery")
	default:
		s.srv.log.Warn("history read failed during recovery", "session", s.id, "channel", sub.channel, "err", err)
		s.closeLocked(protocol.CloseTryAgainLater, "history unavailable")
	}
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
// position: those after since, or the backlog of last (see backlog).
// recovered is nil without since.
func (s *session) catchUp(ctx context.Context, ch string, since *protocol.StreamPosition, last int) ([]broker.Publication, broker.StreamPosition, *bool, error) {
	if since == nil && last > 0 {
		pubs, pos, err := s.backlog(ctx, ch, last)
		return pubs, pos, nil, err
	}
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
		s.stopReplayLocked(s.subs[i])
		s.subs = slices.Delete(s.subs, i, i+1)
		s.srv.metrics.subscriptions.Dec()
	}
	s.mu.Unlock()
	s.leavePresence(ch)
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
	for _, ch := range s.channels() {
		s.dropSubscription(ch)
	}
}

// channels returns the channels the connection holds.
func (s *session) channels() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	chans := make([]string, 0, len(s.subs))
	for _, sub := range s.subs {
		chans = append(chans, sub.channel)
	}
	return chans
}
