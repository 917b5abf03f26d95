// Package client is Herald's Go client. A Client keeps itself connected to a
// Herald server until Close: it reconnects with jittered exponential backoff,
// notices dead connections by the wall clock, resubscribes every channel with
// the position of the last message it handed to the application so that no
// message is lost or repeated across a reconnect, and queues publishes made
// while disconnected, each with an idempotency key, so that a retried publish
// is applied once. Given a token callback (Options.TokenFunc), it replaces
// a JWT on the open connection ahead of its expiry, without reconnecting.
//
// The client paces what it sends in bulk to the request rate limit the
// server states in its welcome (rate and burst): after a reconnect, the
// resubscriptions and then the offline queue go out at most three quarters
// of the burst at once, then at the server's rate; the rest of the burst is
// left for the application's own requests. Subscribe calls go out at once;
// a publish made while the queue is still going out waits behind it, so
// publishes keep their order. A request the server still answers
// rate_limited is sent again after its retry_after_ms on the same
// connection. A server that states no limit (one older than these fields)
// is assumed to allow 10 requests per second with a burst of 20.
//
// Beyond the stream itself: every Message says when the server accepted it
// (TS) and which connection published it (From). Subscribe with Last(n)
// starts with the newest n messages of the channel's history, then the live
// ones, with no gap and no duplicate between them. History reads a page of a
// channel's history and Page.Older the page before it, for scrollback.
// Presence says who is subscribed to a channel, and OnJoin and OnLeave
// report connections arriving and leaving, when the server has presence
// (and join-leave) on for the channel's namespace.
//
// All methods of Client and Subscription are safe for concurrent use. User
// callbacks (message handlers, Options.OnStateChange, subscription options)
// never run under the client's locks and may call the client; one
// subscription's callbacks never run concurrently with each other.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/protocol"
)

// State is where a client is in its life: connecting -> connected ->
// (disconnected -> connecting)* -> closed.
type State int

// The states of a client.
const (
	StateConnecting State = iota
	StateConnected
	StateDisconnected
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateClosed:
		return "closed"
	}
	return "State(" + fmt.Sprint(int(s)) + ")"
}

// StateChange is one change of a client's state, given to
// Options.OnStateChange.
type StateChange struct {
	State State
	// Err is why the connection ended or the attempt failed
	// (StateDisconnected), or why the client stopped (StateClosed; nil after
	// Close). Close codes come as a *CloseError, refused upgrades as a
	// *HandshakeError.
	Err error
	// RetryIn is the wait before the next attempt (StateDisconnected).
	RetryIn time.Duration
	// Attempt numbers the current (StateConnecting) or next
	// (StateDisconnected) attempt since the last healthy connection, from 0.
	Attempt int
	// Session is the server's id for the connection (StateConnected).
	Session string
}

// Client is a connection to a Herald server that keeps itself up until
// Close. Create it with Dial.
type Client struct {
	url    string
	opts   Options
	log    *slog.Logger
	cancel context.CancelFunc
	ids    atomic.Uint64
	events callbackQueue // OnStateChange calls

	runDone    chan struct{} // closed when the run goroutine has returned
	done       chan struct{} // closed when the client is closed
	firstReady chan struct{} // closed at the first ready connection

	mu            sync.Mutex
	state         State
	closed        bool
	err           error  // why the client closed; nil after Close
	lastErr       error  // why the last connection or attempt ended
	conn          *conn  // the welcomed connection, nil when there is none
	pace          *pacer // conn's rate limit, nil when there is no conn
	ready         bool   // conn's resubscriptions are confirmed
	resubscribing int    // resubscriptions conn still waits for
	healthySince  time.Time
	maxMessage    int    // the server's max_message_bytes
	token         string // the token to connect with
	subs          map[string]*Subscription
	calls         map[uint64]*call
	queue         pubQueue
	asks          map[*ask]struct{} // history and presence requests waiting
}

// call is a request waiting for its reply. reply and lost run under c.mu.
type call struct {
	reply func(protocol.Frame) // with the reply: a success frame or *protocol.Error
	lost  func()               // when the connection ended first
	pub   *pub                 // for publishes, which go back to the queue
}

// Dial connects to the Herald server at url (ws:// or wss://) and returns a
// client that stays connected until Close. It returns once the server's
// welcome arrived. A failed attempt is retried with backoff until ctx ends;
// Dial gives up at once on a terminal close code, a rejected token without
// Options.TokenFunc (ErrTokenRequired without any token), an upgrade
// answered with a client error status such as 400, 403 or 404 or with no
// upgrade at all (a page served with 200, a redirect), or a server certificate that Options.TLSConfig does
// not trust (the error wraps a *tls.CertificateVerificationError). After Dial returned, reconnection is automatic, and
// only terminal close codes (or Close) stop the client. A nil opts means
// all defaults.
func Dial(ctx context.Context, url string, opts *Options) (*Client, error) {
	if err := checkURL(url); err != nil {
		return nil, err
	}
	c := newClient(url, opts)
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.run(runCtx)
	select {
	case <-c.firstReady:
		return c, nil
	case <-c.done:
		c.Close()
		return nil, c.Err()
	case <-ctx.Done():
		last := c.lastError()
		c.Close()
		if last != nil {
			return nil, fmt.Errorf("herald: dial %s: %w (last attempt: %w)", url, ctx.Err(), last)
		}
		return nil, fmt.Errorf("herald: dial %s: %w", url, ctx.Err())
	}
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("herald: %w", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return fmt.Errorf("herald: url %q: scheme must be ws or wss", raw)
	}
	return nil
}

func newClient(url string, opts *Options) *Client {
	o := opts.withDefaults()
	return &Client{
		url:        url,
		opts:       o,
		log:        o.Logger,
		runDone:    make(chan struct{}),
		done:       make(chan struct{}),
		firstReady: make(chan struct{}),
		maxMessage: defaultMaxMessageBytes,
		token:      o.Token,
		subs:       make(map[string]*Subscription),
		calls:      make(map[uint64]*call),
		asks:       make(map[*ask]struct{}),
	}
}

// Close sends close 1000, stops reconnecting, and fails every queued or
// unconfirmed publish and every pending Subscribe with ErrClosed. It waits
// for the client's goroutines, except for callbacks already running, and is
// idempotent. It always returns nil.
func (c *Client) Close() error {
	c.cancel()
	<-c.runDone
	return nil
}

// Done is closed when the client has stopped, by Close or by a terminal
// close code; Err says which.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the client runs and after Close, and why it stopped
// otherwise: a *CloseError with a terminal code (4403, 4500-4999, or 4001
// without Options.TokenFunc), a *HandshakeError refusing the first
// connection, or the failed verification of the first server certificate.
// A client without any token that the server refused (4001 or HTTP 401)
// returns ErrTokenRequired, wrapping the *CloseError or *HandshakeError.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// State returns the client's current state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Queued returns the number of publishes waiting in the offline queue.
func (c *Client) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue.items)
}

func (c *Client) lastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

func (c *Client) newID() uint64 { return c.ids.Add(1) }

// setStateLocked records a state change and queues its callback.
func (c *Client) setStateLocked(ch StateChange) {
	c.state = ch.State
	if ch.State == StateDisconnected {
		c.lastErr = ch.Err
	}
	if f := c.opts.OnStateChange; f != nil {
		c.events.push(func() { f(ch) })
	}
}

func (c *Client) setState(ch StateChange) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setStateLocked(ch)
}

// run connects, serves the connection, and reconnects until ctx ends or a
// terminal error stops it.
func (c *Client) run(ctx context.Context) {
	defer close(c.runDone)
	r := &reconnector{c: c, needToken: c.opts.Token == "" && c.opts.TokenFunc != nil}
	var delay time.Duration
	for sleep(ctx, delay) {
		err := c.attempt(ctx, r)
		if ctx.Err() != nil {
			break
		}
		var stop bool
		if delay, stop = r.next(err); stop {
			c.log.Warn("herald: stopped", "url", c.url, "err", err)
			c.finish(err)
			return
		}
		c.log.Info("herald: disconnected", "url", c.url, "err", err, "retry_in", delay)
		c.setState(StateChange{State: StateDisconnected, Err: err, RetryIn: delay, Attempt: r.attempt})
	}
	c.finish(nil)
}

// sleep waits d, and reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	return ctx.Err() == nil
}

// attempt makes one connection and serves it until it ends.
func (c *Client) attempt(ctx context.Context, r *reconnector) error {
	c.setState(StateChange{State: StateConnecting, Attempt: r.attempt})
	token, err := r.currentToken(ctx)
	if err != nil {
		return err
	}
	cn, w, err := c.dial(ctx, token)
	if err != nil {
		return err
	}
	r.everConnected = true
	c.log.Info("herald: connected", "url", c.url, "session", w.Session)
	c.attach(cn, w)
	refreshCtx, stopRefresh := context.WithCancel(ctx)
	refreshDone := make(chan struct{})
	go func() {
		defer close(refreshDone)
		c.keepFresh(refreshCtx, cn, token)
	}()
	err = cn.serve(ctx)
	stopRefresh()
	<-refreshDone
	if healthy := c.detach(cn); !healthy.IsZero() && time.Since(healthy) >= c.opts.Backoff.ResetAfter {
		r.attempt = 0
	}
	return err
}

// attach makes cn the client's connection and resubscribes every channel.
func (c *Client) attach(cn *conn, w *protocol.Welcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn, c.pace = cn, newPacer(w, time.Now())
	if w.MaxMessageBytes > 0 {
		c.maxMessage = w.MaxMessageBytes
	}
	c.setStateLocked(StateChange{State: StateConnected, Session: w.Session})
	c.resubscribing = len(c.subs)
	for _, s := range c.subs {
		c.sendSubscribeLocked(s, true, true)
	}
	c.sendAsksLocked()
	if c.resubscribing == 0 {
		c.readyLocked()
	}
}

// readyLocked runs once conn's resubscriptions are confirmed: it sends the
// offline queue, in order and paced, and lets publishes go straight out
// (behind the queue while it is still being sent).
func (c *Client) readyLocked() {
	c.ready = true
	c.healthySince = time.Now()
	for _, p := range c.takeAllLocked() {
		c.sendPublishLocked(p, true)
	}
	select {
	case <-c.firstReady:
	default:
		close(c.firstReady)
	}
}

// detach forgets the ended connection cn: unconfirmed publishes go back to
// the front of the queue, in the order they were sent, and subscriptions
// wait for the next connection. It returns when cn became ready (zero if it
// never did).
func (c *Client) detach(cn *conn) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	healthy := time.Time{}
	if c.ready {
		healthy = c.healthySince
	}
	if c.pace != nil {
		c.pace.stop()
	}
	c.conn, c.pace, c.ready, c.resubscribing = nil, nil, false, 0
	var unsent []*pub
	for _, id := range sortedIDs(c.calls) {
		cl := c.calls[id]
		if cl.pub != nil {
			unsent = append(unsent, cl.pub)
		} else if cl.lost != nil {
			cl.lost()
		}
	}
	clear(c.calls)
	for _, s := range c.subs {
		s.setStateLocked(SubscriptionSubscribing, nil)
	}
	c.requeueLocked(unsent)
	return healthy
}

// finish closes the client for good.
func (c *Client) finish(cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed, c.err = true, cause
	for _, s := range c.subs {
		c.endSubLocked(s, closedError(cause), true)
	}
	for _, p := range c.takeAllLocked() {
		c.finishPubLocked(p, 0, closedError(cause))
	}
	for a := range c.asks {
		c.finishAskLocked(a, nil, closedError(cause))
	}
	c.setStateLocked(StateChange{State: StateClosed, Err: cause})
	close(c.done)
}

// handle takes one frame from the reader of cn.
func (c *Client) handle(cn *conn, f protocol.Frame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != cn {
		return
	}
	switch f := f.(type) {
	case *protocol.Message:
		c.onMessageLocked(f)
		return
	case *protocol.Join:
		c.onMemberLocked(f.Channel, f.Member, false)
		return
	case *protocol.Leave:
		c.onMemberLocked(f.Channel, f.Member, true)
		return
	}
	switch f := f.(type) {
	case *protocol.Unsubscribed:
		if f.ID == 0 {
			c.revokedLocked(f)
			return
		}
	case *protocol.Subscribed:
		if f.ID == 0 {
			c.serverSubscribedLocked(f)
			return
		}
	}
	id := replyID(f)
	cl := c.calls[id]
	if id == 0 || cl == nil {
		return // a pong, or an error about a request sent without id
	}
	delete(c.calls, id)
	cl.reply(f)
}

func replyID(f protocol.Frame) uint64 {
	switch f := f.(type) {
	case *protocol.Subscribed:
		return f.ID
	case *protocol.Unsubscribed:
		return f.ID
	case *protocol.Published:
		return f.ID
	case *protocol.Refreshed:
		return f.ID
	case *protocol.Result:
		return f.ID
	case *protocol.Error:
		return f.ID
	case *protocol.Page:
		return f.ID
	case *protocol.Present:
		return f.ID
	}
	return 0
}

// reconnector holds the run goroutine's reconnection state.
type reconnector struct {
	c             *Client
	attempt       int    // attempts since the last healthy connection
	everConnected bool   // a welcome arrived at least once
	rejected      string // the token the server refused, or that expired
	needToken     bool   // ask TokenFunc before the next attempt
}

// currentToken returns the token to connect with, asking Options.TokenFunc
// for a new one when needed: at first when Options.Token is empty, after the
// server refused the token, and when it is a JWT whose exp has passed. A
// callback that hands back the token the server just refused, or the expired
// one, is an error: that token is never sent again.
func (r *reconnector) currentToken(ctx context.Context) (string, error) {
	c := r.c
	c.mu.Lock()
	token := c.token
	c.mu.Unlock()
	if c.opts.TokenFunc != nil && !r.needToken && tokenExpired(token, time.Now()) {
		r.rejected, r.needToken = token, true
	}
	if !r.needToken {
		return token, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.c.opts.DialTimeout)
	defer cancel()
	tok, err := r.c.opts.TokenFunc(ctx)
	switch {
	case err != nil:
		return "", fmt.Errorf("herald: token callback: %w", err)
	case tok != "" && tok == r.rejected:
		return "", errors.New("herald: token callback returned the token the server rejected, or that expired")
	}
	c.mu.Lock()
	c.token = tok
	c.mu.Unlock()
	r.needToken = false
	return tok, nil
}

// next returns the wait before the next attempt after err, or stop when
// err is terminal.
func (r *reconnector) next(err error) (delay time.Duration, stop bool) {
	b := r.c.opts.Backoff
	delay = b.Delay(r.attempt)
	r.attempt++
	var ce *CloseError
	var he *HandshakeError
	switch {
	case errors.Is(err, ErrUnauthorized):
		return 0, true // the token callback says so
	case errors.As(err, &ce) && ce.Code == protocol.CloseUnauthorized:
		return delay, !r.rejectToken()
	case errors.As(err, &ce) && !ce.Code.Retryable():
		return 0, true
	case errors.As(err, &ce) && ce.Code == protocol.CloseGoingAway && r.attempt == 1:
		return b.GoingAway(), false // the server restarts: spread the returns
	case errors.As(err, &ce) && ce.Code == protocol.CloseGoingAway:
		return max(delay, b.GoingAway()), false // still backing off
	case errors.As(err, &he) && he.Status == 401:
		return delay, !r.rejectToken()
	case errors.As(err, &he) && he.permanent() && !r.everConnected:
		return 0, true
	case isCertificateError(err) && !r.everConnected:
		return 0, true // Options.TLSConfig does not trust the server
	case errors.As(err, &he):
		return retryAfter(delay, he.RetryAfter), false
	}
	return delay, false
}

// isCertificateError reports whether err is the failed verification of the
// server's TLS certificate.
func isCertificateError(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}

// rejectToken notes that the server refused the current token, and reports
// whether a fresh one can be asked for.
func (r *reconnector) rejectToken() bool {
	if r.c.opts.TokenFunc == nil {
		return false
	}
	c := r.c
	c.mu.Lock()
	r.rejected = c.token
	c.mu.Unlock()
	r.needToken = true
	return true
}

func sortedIDs(calls map[uint64]*call) []uint64 {
	ids := make([]uint64, 0, len(calls))
	for id := range calls {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
