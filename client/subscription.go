package client

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/protocol"
)

// Message is one publication handed to a subscription's handler or held in
// a history Page. The handler may keep it; its Data is not reused.
type Message struct {
	Channel string
	Offset  uint64
	Data    json.RawMessage
	// TS is when the server accepted the publication (millisecond
	// precision), the same on every node and in every later read; zero from
	// a server that does not stamp messages.
	TS time.Time
	// From is the connection that published it, as the server saw it: a
	// client cannot claim to be someone else. Zero for a publication made
	// through the HTTP API.
	From Member
}

// Recovery reports how a subscribe with a position went: after every
// reconnect, after a gap in offsets, and for a Subscribe with Since.
type Recovery struct {
	Channel string
	// Recovered is true when every message published after Since is being
	// replayed: the handler gets each of them, in order, before newer ones.
	// It is false when they are no longer in the server's history, or the
	// stream restarted under a new epoch: messages were missed, and the
	// application should reload its state; the handler continues after
	// Position.
	Recovered bool
	Since     protocol.StreamPosition // the position the client asked from
	Position  protocol.StreamPosition // the channel's newest position then
}

// SubscribeOption is a per-subscription setting for Subscribe.
type SubscribeOption func(*Subscription)

// OnRecovery sets a callback for every Recovery of the subscription. It runs
// in order with the subscription's messages: a Recovery comes before the
// replayed messages it announces.
func OnRecovery(f func(Recovery)) SubscribeOption {
	return func(s *Subscription) { s.onRecovery = f }
}

// OnError sets a callback for the end of a subscription the server refused
// to renew after a reconnect (for example forbidden, after a token change).
// It runs after the subscription's last message. Retryable refusals do not
// end the subscription: after rate_limited the client asks again when the
// server says, after unavailable or internal it reconnects with backoff.
func OnError(f func(error)) SubscribeOption {
	return func(s *Subscription) { s.onError = f }
}

// SubscriptionState is where a subscription is.
type SubscriptionState int

// The states of a subscription: subscribing (waiting for the server's
// confirmation: at first, after every reconnect, and while it asks for
// messages it missed after a gap), subscribed (the server confirmed it and
// messages flow), and unsubscribed (the server ended it; it is not renewed).
const (
	SubscriptionSubscribing SubscriptionState = iota
	SubscriptionSubscribed
	SubscriptionUnsubscribed
)

func (s SubscriptionState) String() string {
	switch s {
	case SubscriptionSubscribing:
		return "subscribing"
	case SubscriptionSubscribed:
		return "subscribed"
	case SubscriptionUnsubscribed:
		return "unsubscribed"
	}
	return "SubscriptionState(" + fmt.Sprint(int(s)) + ")"
}

// SubscriptionStateChange is one change of a subscription's state, given to
// the callback of OnState.
type SubscriptionStateChange struct {
	Channel string
	State   SubscriptionState
	// Err is why the server ended the subscription (unsubscribed).
	Err error
}

// OnState sets a callback for every change of the subscription's state:
// subscribing -> subscribed when the server confirms (the first time too),
// subscribed -> subscribing when the connection drops or the client asks
// again for missed messages, and -> unsubscribed when the server ends the
// subscription (then after its last message, and before OnError's
// callback). It runs in order with the subscription's messages, never after
// Unsubscribe or Close returned: an end the application asked for, or the
// client's stop (see Options.OnStateChange), is not reported.
func OnState(f func(SubscriptionStateChange)) SubscribeOption {
	return func(s *Subscription) { s.onState = f }
}

// setStateLocked records a change of s's state and queues its callback.
func (s *Subscription) setStateLocked(st SubscriptionState, err error) {
	if s.state == st {
		return
	}
	s.state = st
	if f := s.onState; f != nil {
		ch := SubscriptionStateChange{Channel: s.channel, State: st, Err: err}
		s.q.push(func() { f(ch) })
	}
}

// Last asks for a backlog: the newest n messages the server's history holds
// (fewer when it holds fewer) are handed to the handler before the live
// ones, in offset order, with no gap and no duplicate between them. n is 0
// (no backlog) to MaxLast. The backlog is asked for with the first
// subscribe only; after a reconnect the subscription continues where it
// stopped, as always. It cannot be combined with Since.
func Last(n int) SubscribeOption {
	return func(s *Subscription) { s.last = n }
}

// Since makes the subscription start after pos, a position the application
// kept (Subscription.Position) from an earlier run: the server replays what
// was published after it, and OnRecovery tells whether that worked.
func Since(pos protocol.StreamPosition) SubscribeOption {
	return func(s *Subscription) { s.pos, s.hasPos = pos, true }
}

// Subscription is the client's interest in one channel. It survives
// reconnects until Unsubscribe or Close. Its methods are safe for concurrent
// use.
type Subscription struct {
	c          *Client
	channel    string
	handler    func(Message)
	onRecovery func(Recovery)
	onError    func(error)
	onState    func(SubscriptionStateChange)
	onJoin     func(Member)
	onLeave    func(Member)
	last       int           // the backlog asked for by the first subscribe
	q          callbackQueue // the handler's calls, in offset order
	// behind is set when q held Options.HandlerQueue messages: the channel's
	// messages are let go until the handler has caught up (resume).
	behind atomic.Bool
	first  chan struct{} // closed at the first subscribed or refusal
	done   chan struct{} // closed when the subscription ends

	// Guarded by c.mu.
	pos       protocol.StreamPosition // of the last message handed to handler
	hasPos    bool
	reqID     uint64 // the subscribe waiting for its reply, 0 when none
	active    bool   // subscribed on the current connection, in order
	firstDone bool
	firstErr  error
	ended     bool
	err       error
	state     SubscriptionState // as last reported to onState
	// backlogEnd is the newest offset when the server confirmed a
	// subscribe with last; inBacklog is set from then until the first
	// message, while pos is the offset before the backlog could start.
	backlogEnd uint64
	inBacklog  bool
}

// Subscribe subscribes to channel and returns once the server confirmed it;
// while the client is disconnected it waits for the next connection. handler
// is called with every message of the channel, in offset order, each once,
// also across reconnects (see Recovery), never concurrently with itself and
// never after Unsubscribe or Close returned. Up to Options.HandlerQueue
// messages wait for a slow handler; beyond that the client lets them go and
// has the server replay them once the handler has caught up. A client holds
// one subscription per channel.
func (c *Client) Subscribe(ctx context.Context, channel string, handler func(Message), opts ...SubscribeOption) (*Subscription, error) {
	if handler == nil {
		panic("client: Subscribe with a nil handler")
	}
	if err := protocol.ValidateChannel(channel); err != nil {
		return nil, fmt.Errorf("herald: subscribe %q: %w", channel,
			&protocol.Error{Code: protocol.CodeInvalidChannel, Message: err.Error()})
	}
	s := c.newSubscription(channel, handler, opts)
	if err := s.checkLast(); err != nil {
		return nil, fmt.Errorf("herald: subscribe %s: %w", channel, err)
	}
	if err := c.addSub(s); err != nil {
		return nil, err
	}
	select {
	case <-s.first:
		if s.firstErr != nil {
			return nil, s.firstErr
		}
		return s, nil
	case <-ctx.Done():
		c.dropSub(s)
		return nil, fmt.Errorf("herald: subscribe %s: %w", channel, ctx.Err())
	}
}

func (c *Client) newSubscription(channel string, handler func(Message), opts []SubscribeOption) *Subscription {
	s := &Subscription{c: c, channel: channel, handler: handler,
		first: make(chan struct{}), done: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Subscription returns the client's subscription to channel, nil when it
// holds none: one from Subscribe or one the server made (OnServerSubscribe).
func (c *Client) Subscription(channel string) *Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subs[channel]
}

// serverSubscribedLocked takes a subscribed frame without id: the server
// subscribed the connection on its own. A channel the client holds is
// recovered by its own subscribe, sent after the welcome; any other becomes
// one of the client's subscriptions when OnServerSubscribe gives it a
// handler, starting at the position the server confirmed.
func (c *Client) serverSubscribedLocked(f *protocol.Subscribed) {
	if c.subs[f.Channel] != nil || c.opts.OnServerSubscribe == nil {
		return
	}
	handler, opts := c.opts.OnServerSubscribe(f.Channel)
	if handler == nil {
		return
	}
	s := c.newSubscription(f.Channel, handler, opts)
	c.subs[f.Channel] = s
	c.subscribedLocked(s, &protocol.Subscribe{Channel: f.Channel}, f)
}

func (s *Subscription) checkLast() error {
	switch {
	case s.last < 0 || s.last > MaxLast:
		return &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("last must be 0 to %d", MaxLast)}
	case s.last > 0 && s.hasPos:
		return &protocol.Error{Code: protocol.CodeBadRequest, Message: "last and since together"}
	}
	return nil
}

func (c *Client) addSub(s *Subscription) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return closedError(c.err)
	case c.subs[s.channel] != nil:
		return fmt.Errorf("%w %s", ErrAlreadySubscribed, s.channel)
	}
	c.subs[s.channel] = s
	if c.conn != nil {
		c.sendSubscribeLocked(s, false, false)
	}
	return nil
}

// dropSub ends a subscription whose Subscribe gave up, telling the server
// without waiting for its answer.
func (c *Client) dropSub(s *Subscription) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.ended {
		return
	}
	held := c.heldLocked(s)
	c.endSubLocked(s, ErrUnsubscribed, true)
	if held {
		c.conn.send(&protocol.Unsubscribe{Channel: s.channel})
	}
}

// Channel returns the subscription's channel.
func (s *Subscription) Channel() string { return s.channel }

// Position returns the epoch and offset of the last message handed to the
// handler (or, before any, of the subscription's start).
func (s *Subscription) Position() protocol.StreamPosition {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.pos
}

// Done is closed when the subscription ends: Unsubscribe, Close, or a
// refusal the client cannot retry; Err says which.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err returns nil while the subscription lasts, and why it ended after.
func (s *Subscription) Err() error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.err
}

// Unsubscribe ends the subscription: its handler is not called after
// Unsubscribe returns, except for a call already running. When connected it
// waits for the server's confirmation until ctx ends. Unsubscribing twice is
// harmless.
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	c := s.c
	c.mu.Lock()
	if s.ended {
		c.mu.Unlock()
		return nil
	}
	held := c.heldLocked(s)
	c.endSubLocked(s, ErrUnsubscribed, true)
	var answer chan error
	if held {
		answer = make(chan error, 1)
		id := c.newID()
		c.calls[id] = &call{
			reply: func(f protocol.Frame) { answer <- unsubscribeError(s.channel, f) },
			lost:  func() { answer <- nil }, // the server forgot it with the connection
		}
		c.conn.send(&protocol.Unsubscribe{ID: id, Channel: s.channel})
	}
	c.mu.Unlock()
	if answer == nil {
		return nil
	}
	select {
	case err := <-answer:
		return err
	case <-ctx.Done():
		return fmt.Errorf("herald: unsubscribe %s: %w", s.channel, ctx.Err())
	}
}

func unsubscribeError(channel string, f protocol.Frame) error {
	e, ok := f.(*protocol.Error)
	if !ok || e.Code == protocol.CodeNotSubscribed {
		return nil
	}
	return fmt.Errorf("herald: unsubscribe %s: %w", channel, e)
}

// endSubLocked ends s with err. discard drops the handler calls not yet
// started; otherwise they still run.
func (c *Client) endSubLocked(s *Subscription, err error, discard bool) {
	if s.ended {
		return
	}
	s.ended, s.err, s.active = true, err, false
	if c.subs[s.channel] == s {
		delete(c.subs, s.channel)
	}
	s.resolveFirstLocked(err)
	close(s.done)
	if discard {
		s.q.stop()
	} else {
		s.q.seal()
	}
}

func (s *Subscription) resolveFirstLocked(err error) {
	if !s.firstDone {
		s.firstDone, s.firstErr = true, err
		close(s.first)
	}
}

// heldLocked reports whether the server may hold s on the current
// connection: it is subscribed, or a subscribe for it left the pacer.
func (c *Client) heldLocked(s *Subscription) bool {
	if c.conn == nil {
		return false
	}
	return s.active || (s.reqID != 0 && !c.pace.waiting(s.reqID))
}

// sendSubscribeLocked sends a subscribe for s on the current connection,
// with since when s has a position, and with last, when Last asked for a
// backlog, until it has one; bulk ones are paced (see pacer). resub
// marks one of the resubscriptions a new connection waits for before it is
// ready.
func (c *Client) sendSubscribeLocked(s *Subscription, resub, bulk bool) {
	id := c.newID()
	req := &protocol.Subscribe{ID: id, Channel: s.channel}
	if s.hasPos {
		since := s.pos
		req.Since = &since
	} else {
		req.Last = s.last
	}
	s.reqID, s.active, s.inBacklog = id, false, false
	s.setStateLocked(SubscriptionSubscribing, nil)
	cn := c.conn
	c.calls[id] = &call{
		reply: func(f protocol.Frame) { c.onSubscribeReplyLocked(cn, s, req, f, resub) },
		lost: func() {
			if s.reqID == id {
				s.reqID = 0
			}
		},
	}
	c.sendLocked(req, bulk, func() bool {
		if !s.ended && s.reqID == id {
			return false
		}
		delete(c.calls, id) // no longer wanted: answer it here
		if resub {
			c.resubscribedLocked(cn)
		}
		return true
	})
}

func (c *Client) onSubscribeReplyLocked(cn *conn, s *Subscription, req *protocol.Subscribe, f protocol.Frame, resub bool) {
	if !s.ended && s.reqID == req.ID {
		s.reqID = 0
		if e, ok := f.(*protocol.Error); ok && e.Code == protocol.CodeRateLimited {
			c.rateLimitedLocked()
			afterLimit(e, func() { c.resendSubscribe(cn, s, resub) })
			return // still outstanding
		}
		switch f := f.(type) {
		case *protocol.Subscribed:
			c.subscribedLocked(s, req, f)
		case *protocol.Error:
			c.subscribeRefusedLocked(cn, s, f)
		}
	}
	if resub {
		c.resubscribedLocked(cn)
	}
}

// resendSubscribe sends again a subscribe the server rate-limited, when its
// connection is still the current one; the next connection resubscribes
// anyway.
func (c *Client) resendSubscribe(cn *conn, s *Subscription, resub bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.conn != cn:
	case s.ended || s.reqID != 0:
		if resub {
			c.resubscribedLocked(cn)
		}
	default:
		c.sendSubscribeLocked(s, resub, true)
	}
}

// afterLimit runs f once a rate_limited error's retry_after_ms has passed.
func afterLimit(e *protocol.Error, f func()) {
	time.AfterFunc(time.Duration(max(e.RetryAfterMS, 1))*time.Millisecond, f)
}

// resubscribedLocked counts one confirmed resubscription of cn.
func (c *Client) resubscribedLocked(cn *conn) {
	c.resubscribing--
	if c.resubscribing == 0 && c.conn == cn && !c.ready && !cn.failed() {
		c.readyLocked()
	}
}

func (c *Client) subscribedLocked(s *Subscription, req *protocol.Subscribe, f *protocol.Subscribed) {
	since := req.Since
	recovered := since != nil && f.Recovered != nil && *f.Recovered
	if !recovered {
		s.pos = protocol.StreamPosition{Epoch: f.Epoch, Offset: f.Offset}
	}
	if req.Last > 0 {
		s.inBacklog, s.backlogEnd = true, f.Offset
		s.pos.Offset = f.Offset - min(uint64(req.Last), f.Offset)
	}
	s.hasPos, s.active = true, true
	s.setStateLocked(SubscriptionSubscribed, nil)
	if since != nil && s.onRecovery != nil {
		r := Recovery{Channel: s.channel, Recovered: recovered, Since: *since,
			Position: protocol.StreamPosition{Epoch: f.Epoch, Offset: f.Offset}}
		s.q.push(func() { s.onRecovery(r) })
	}
	s.resolveFirstLocked(nil)
}

// subscribeRefusedLocked handles an error answering a subscribe (other
// than rate_limited, which is retried after the time the server asks).
// Subscribe returns it; later, a retryable one drops the connection so that
// the client tries again after backoff, and any other ends the subscription.
func (c *Client) subscribeRefusedLocked(cn *conn, s *Subscription, e *protocol.Error) {
	err := fmt.Errorf("herald: subscribe %s: %w", s.channel, e)
	switch {
	case !s.firstDone:
		c.endSubLocked(s, err, true)
	case retryableCode(e.Code):
		cn.fail(err)
	default:
		s.setStateLocked(SubscriptionUnsubscribed, err)
		if f := s.onError; f != nil {
			s.q.push(func() { f(err) })
		}
		c.endSubLocked(s, err, false)
	}
}

// revokedLocked ends a subscription the server ended on its own (after a
// refresh to a token that no longer allows it). It is not subscribed again;
// its error wraps a forbidden *protocol.Error carrying the server's reason.
func (c *Client) revokedLocked(u *protocol.Unsubscribed) {
	s := c.subs[u.Channel]
	if s == nil {
		return
	}
	err := fmt.Errorf("herald: subscription to %s ended by the server: %w", u.Channel, &protocol.Error{Code: protocol.CodeForbidden, Message: u.Reason})
	s.setStateLocked(SubscriptionUnsubscribed, err)
	if f := s.onError; f != nil {
		s.q.push(func() { f(err) })
	}
	c.endSubLocked(s, err, false)
}

func retryableCode(code protocol.Code) bool {
	switch code {
	case protocol.CodeUnavailable, protocol.CodeInternal:
		return true
	}
	return false
}

// onMessageLocked hands m to its subscription's handler when it is the next
// offset; it drops duplicates, and a gap makes the client resubscribe from
// the last offset handed over, so the server replays what is missing. While
// Options.HandlerQueue messages wait for the handler it lets m go, and
// resume asks for those again once the handler has caught up. The first
// message after a subscribe with last may start the backlog, anywhere
// after the newest offset minus last: history may hold fewer.
func (c *Client) onMessageLocked(m *protocol.Message) {
	s := c.subs[m.Channel]
	if s == nil || !s.active || s.behind.Load() {
		return
	}
	if s.inBacklog {
		s.inBacklog = false
		if m.Offset > s.pos.Offset && m.Offset <= s.backlogEnd+1 {
			s.pos.Offset = m.Offset - 1
		}
	}
	switch {
	case m.Offset <= s.pos.Offset:
	case m.Offset > s.pos.Offset+1:
		c.sendSubscribeLocked(s, false, true)
	default:
		msg := newMessage(m.Channel, m.Offset, m.Data, m.TS, m.From)
		taken := s.q.pushBounded(func() {
			s.handler(msg)
			if s.behind.Load() && s.q.len() <= c.opts.HandlerQueue/2 {
				c.resume(s)
			}
		}, c.opts.HandlerQueue)
		if !taken {
			s.behind.Store(true) // resume asks for it again
			return
		}
		s.pos.Offset = m.Offset
	}
}

// resume takes the messages of a subscription whose handler has caught up
// again: the server replays from the last message handed over, which a
// subscribe already on its way, or the next connection's, asks for anyway.
func (c *Client) resume(s *Subscription) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.ended || !s.behind.Swap(false) {
		return
	}
	if s.active && s.reqID == 0 && c.conn != nil {
		c.sendSubscribeLocked(s, false, true)
	}
}
