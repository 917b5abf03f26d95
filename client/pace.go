package client

import (
	"time"

	"github.com/heraldhq/herald/protocol"
)

// The rate limit assumed for a server whose welcome does not state one (a
// server older than the rate and burst fields): well under such a server's
// default of 50 requests per second with a burst of 100, because it counts
// rate_limited answers towards its 4029 limit.
const (
	defaultServerRate  = 10.0
	defaultServerBurst = 20
)

// pacer is the client's copy of the server's token bucket for one
// connection (welcome's rate and burst). Requests the client sends in bulk
// (resubscriptions, the offline queue, retries) wait in its line for a
// token, in order; the application's own requests go out at once, taking a
// token when there is one, unless the line is waiting (then they join it,
// so publishes keep their order). A quarter of the server's burst is kept
// back for what is never paced (pings, refresh, unsubscribe) and for
// requests that reach the server closer together than they were sent.
// Guarded by the client's lock.
type pacer struct {
	rate   float64 // tokens per second
	size   float64 // the most it spends at once
	tokens float64
	last   time.Time
	line   []paced // requests waiting for a token, oldest first
	timer  *time.Timer
}

// paced is a request waiting in the line. skip, when not nil, runs when its
// turn comes and reports that it is no longer wanted.
type paced struct {
	frame protocol.Frame
	skip  func() bool
}

// newPacer returns a full bucket for the rate limit w advertises.
func newPacer(w *protocol.Welcome, now time.Time) *pacer {
	rate, burst := w.Rate, w.Burst
	if rate <= 0 || burst <= 0 {
		rate, burst = defaultServerRate, defaultServerBurst
	}
	size := float64(max(1, burst-burst/4))
	return &pacer{rate: rate, size: size, tokens: size, last: now}
}

func (p *pacer) refill(now time.Time) {
	p.tokens = min(p.size, p.tokens+now.Sub(p.last).Seconds()*p.rate)
	p.last = now
}

// take spends a token, if there is one.
func (p *pacer) take(now time.Time) bool {
	p.refill(now)
	if p.tokens < 1 {
		return false
	}
	p.tokens--
	return true
}

// wait returns how long until the next token.
func (p *pacer) wait() time.Duration {
	return max(time.Duration((1-p.tokens)/p.rate*float64(time.Second)), time.Millisecond)
}

// emptied notes that the server answered rate_limited: its bucket is empty,
// whatever the client's copy says.
func (p *pacer) emptied(now time.Time) {
	p.refill(now)
	p.tokens = min(p.tokens, 0)
}

func (p *pacer) stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
}

// sendLocked sends f on the current connection. bulk requests wait their
// turn in the pacer's line; others go at once unless the line is waiting.
func (c *Client) sendLocked(f protocol.Frame, bulk bool, skip func() bool) {
	p := c.pace
	if !bulk && len(p.line) == 0 {
		p.take(time.Now())
		c.conn.send(f)
		return
	}
	p.line = append(p.line, paced{frame: f, skip: skip})
	c.drainLocked(p)
}

// drainLocked sends what p's tokens allow from the head of its line, and
// arms a timer for the rest.
func (c *Client) drainLocked(p *pacer) {
	if c.pace != p {
		return // the connection ended; its line went with it
	}
	now := time.Now()
	for len(p.line) > 0 {
		r := p.line[0]
		p.line = p.line[1:] // before skip, which may send (and drain) again
		if r.skip != nil && r.skip() {
			continue
		}
		if !p.take(now) {
			p.line = append([]paced{r}, p.line...)
			break
		}
		c.conn.send(r.frame)
	}
	if len(p.line) > 0 && p.timer == nil {
		p.timer = time.AfterFunc(p.wait(), func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			p.timer = nil
			c.drainLocked(p)
		})
	}
}

// rateLimitedLocked notes a rate_limited answer on the current connection.
func (c *Client) rateLimitedLocked() {
	if c.pace != nil {
		c.pace.emptied(time.Now())
	}
}

// waiting reports whether the request with id is still in the line.
func (p *pacer) waiting(id uint64) bool {
	for _, r := range p.line {
		if rq, ok := r.frame.(protocol.Request); ok && rq.RequestID() == id {
			return true
		}
	}
	return false
}
