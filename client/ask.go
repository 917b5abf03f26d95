package client

import (
	"context"
	"fmt"

	"github.com/heraldhq/herald/protocol"
)

// ask is a request that reads and changes nothing (history, presence), from
// the call until its answer. Since asking twice is harmless, it waits for a
// connection when there is none, and is asked again on the next one when
// the connection ends before the answer. Guarded by c.mu.
type ask struct {
	what   string                         // for errors: "history chat"
	frame  func(id uint64) protocol.Frame // the request with id
	done   chan askResult
	callID uint64 // the request in flight, 0 when none
}

type askResult struct {
	f   protocol.Frame
	err error
}

// askServer sends the request frame makes and returns the server's success
// frame; an error frame comes back as an error wrapping its *protocol.Error.
// A rate_limited answer is asked again after its retry_after_ms.
func (c *Client) askServer(ctx context.Context, what string, frame func(id uint64) protocol.Frame) (protocol.Frame, error) {
	a := &ask{what: what, frame: frame, done: make(chan askResult, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, closedError(c.err)
	}
	c.asks[a] = struct{}{}
	if c.conn != nil {
		c.sendAskLocked(a, false)
	}
	c.mu.Unlock()
	select {
	case r := <-a.done:
		return r.f, r.err
	case <-ctx.Done():
		c.mu.Lock()
		c.forgetAskLocked(a)
		c.mu.Unlock()
		return nil, fmt.Errorf("herald: %s: %w", what, ctx.Err())
	}
}

// sendAsksLocked sends, paced, the requests waiting for a connection.
func (c *Client) sendAsksLocked() {
	for a := range c.asks {
		if a.callID == 0 {
			c.sendAskLocked(a, true)
		}
	}
}

func (c *Client) sendAskLocked(a *ask, bulk bool) {
	id := c.newID()
	a.callID = id
	c.calls[id] = &call{
		reply: func(f protocol.Frame) { c.onAskReplyLocked(a, f) },
		lost: func() {
			if a.callID == id {
				a.callID = 0 // the next connection asks again
			}
		},
	}
	c.sendLocked(a.frame(id), bulk, func() bool { return c.calls[id] == nil })
}

func (c *Client) onAskReplyLocked(a *ask, f protocol.Frame) {
	a.callID = 0
	e, ok := f.(*protocol.Error)
	switch {
	case !ok:
		c.finishAskLocked(a, f, nil)
	case e.Code == protocol.CodeRateLimited:
		c.rateLimitedLocked()
		afterLimit(e, func() { c.resendAsk(a) })
	default:
		c.finishAskLocked(a, nil, fmt.Errorf("herald: %s: %w", a.what, e))
	}
}

func (c *Client) resendAsk(a *ask) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.asks[a]; ok && a.callID == 0 && c.conn != nil {
		c.sendAskLocked(a, true)
	}
}

// finishAskLocked hands the caller its answer, once.
func (c *Client) finishAskLocked(a *ask, f protocol.Frame, err error) {
	if _, ok := c.asks[a]; !ok {
		return
	}
	delete(c.asks, a)
	a.done <- askResult{f, err}
}

// forgetAskLocked drops a request whose caller stopped waiting.
func (c *Client) forgetAskLocked(a *ask) {
	delete(c.asks, a)
	if a.callID != 0 {
		delete(c.calls, a.callID)
	}
}
