package client

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/heraldhq/herald/protocol"
)

// PublishOption is a per-publish setting for Publish.
type PublishOption func(*pub)

// WithKey sets the publish's idempotency key (at most 64 bytes) instead of a
// new UUIDv7. Publishing again with the same key on the same channel, within
// the server's history window, returns the first publication's offset and
// delivers nothing new.
func WithKey(key string) PublishOption {
	return func(p *pub) { p.key = key }
}

// pub is one publish, from Publish until its result. Guarded by c.mu.
type pub struct {
	channel  string
	data     json.RawMessage
	key      string
	size     int // counted against Options.QueueBytes
	done     chan pubResult
	finished bool
	queued   bool
	deadline time.Time   // when it fails if still queued
	timer    *time.Timer // runs expire at deadline while queued
	callID   uint64      // the request in flight, 0 when none
}

type pubResult struct {
	offset uint64
	err    error
}

// Publish sends data to channel and returns the offset the server gave it.
// data is sent as is when it is a json.RawMessage (it must be valid JSON),
// and encoded with encoding/json otherwise. Every publish carries an
// idempotency key (a UUIDv7 unless WithKey is given), kept when it is
// resent, so it is applied at most once.
//
// While the client is not connected, or is still resubscribing after a
// reconnect, the publish waits in the offline queue and is sent after the
// resubscriptions, in order; a full queue fails it at once with
// ErrQueueFull, and one that waited Options.QueueTimeout fails with
// ErrQueueTimeout. A publish sent on a connection that died before the
// answer goes back to the queue and is sent again. Errors from the server
// wrap a *protocol.Error; only a rate_limited answer to a publish that came
// through the queue, or waited behind it, is not returned but retried after
// retry_after_ms, until Options.QueueTimeout. When ctx ends, a queued publish is dropped; one
// already sent may still be applied.
func (c *Client) Publish(ctx context.Context, channel string, data any, opts ...PublishOption) (uint64, error) {
	p, err := newPub(channel, data, opts)
	if err != nil {
		return 0, err
	}
	if err := c.submit(p); err != nil {
		return 0, err
	}
	select {
	case r := <-p.done:
		return r.offset, r.err
	case <-ctx.Done():
		c.abandon(p)
		return 0, fmt.Errorf("herald: publish to %s: %w", channel, ctx.Err())
	}
}

func newPub(channel string, data any, opts []PublishOption) (*pub, error) {
	if err := protocol.ValidateChannel(channel); err != nil {
		return nil, fmt.Errorf("herald: publish to %q: %w", channel,
			&protocol.Error{Code: protocol.CodeInvalidChannel, Message: err.Error()})
	}
	raw, err := encodeData(data)
	if err != nil {
		return nil, fmt.Errorf("herald: publish to %s: %w", channel, err)
	}
	p := &pub{channel: channel, data: raw, done: make(chan pubResult, 1)}
	for _, o := range opts {
		o(p)
	}
	if p.key == "" {
		p.key = uuid.Must(uuid.NewV7()).String()
	}
	if len(p.key) > protocol.MaxKeyBytes {
		return nil, fmt.Errorf("herald: publish to %s: key longer than %d bytes", channel, protocol.MaxKeyBytes)
	}
	p.size = len(raw) + len(channel) + len(p.key)
	return p, nil
}

func encodeData(data any) (json.RawMessage, error) {
	if raw, ok := data.(json.RawMessage); ok {
		if !json.Valid(raw) {
			return nil, fmt.Errorf("data is not valid JSON")
		}
		return append(json.RawMessage(nil), raw...), nil
	}
	return json.Marshal(data)
}

// frameSize is the size of p's publish frame, with the longest possible id.
func (p *pub) frameSize() int {
	b, _ := protocol.Encode(p.frame(math.MaxUint64))
	return len(b)
}

func (p *pub) frame(id uint64) *protocol.Publish {
	return &protocol.Publish{ID: id, Channel: p.channel, Data: p.data, Key: p.key}
}

// submit sends p when the connection is ready, and queues it otherwise.
func (c *Client) submit(p *pub) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return closedError(c.err)
	case p.frameSize() > c.maxMessage:
		return fmt.Errorf("%w (%d bytes)", ErrTooLarge, c.maxMessage)
	case c.ready:
		c.sendPublishLocked(p, false)
	case !c.queue.fits(p, &c.opts):
		return ErrQueueFull
	default:
		c.queueLocked(p, false)
	}
	return nil
}

// sendPublishLocked sends p on the ready connection; bulk ones (the
// offline queue, retries) are paced, and any publish waits behind them.
// One that waits gets a deadline, like a queued one: until then a
// rate_limited answer is retried rather than returned.
func (c *Client) sendPublishLocked(p *pub, bulk bool) {
	id := c.newID()
	p.callID = id
	if p.deadline.IsZero() && (bulk || len(c.pace.line) > 0) {
		p.deadline = time.Now().Add(c.opts.QueueTimeout)
	}
	c.calls[id] = &call{pub: p, reply: func(f protocol.Frame) { c.onPublishReplyLocked(p, f) }}
	c.sendLocked(p.frame(id), bulk, func() bool { return c.calls[id] == nil })
}

// onPublishReplyLocked takes the answer to a publish. A publish that came
// through the offline queue and was rate-limited (the queue is flushed in a
// burst) is sent again when the server says, until its queue deadline; any
// other error goes to the caller.
func (c *Client) onPublishReplyLocked(p *pub, f protocol.Frame) {
	p.callID = 0
	switch f := f.(type) {
	case *protocol.Published:
		c.finishPubLocked(p, f.Offset, nil)
	case *protocol.Error:
		if f.Code == protocol.CodeRateLimited {
			c.rateLimitedLocked()
		}
		if f.Code == protocol.CodeRateLimited && time.Now().Before(p.deadline) {
			afterLimit(f, func() { c.resendPub(p) })
			return
		}
		c.finishPubLocked(p, 0, fmt.Errorf("herald: publish to %s: %w", p.channel, f))
	}
}

func (c *Client) resendPub(p *pub) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case p.finished:
	case c.closed:
		c.finishPubLocked(p, 0, closedError(c.err))
	case c.ready:
		c.sendPublishLocked(p, true)
	default:
		c.queueLocked(p, true)
	}
}

// finishPubLocked hands Publish its result, once.
func (c *Client) finishPubLocked(p *pub, offset uint64, err error) {
	if p.finished {
		return
	}
	p.finished = true
	p.done <- pubResult{offset, err}
}

// abandon forgets a publish whose caller stopped waiting: it leaves the
// queue, or, when in flight, is not resent.
func (c *Client) abandon(p *pub) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.takeLocked(p)
	if p.callID != 0 {
		delete(c.calls, p.callID)
	}
	c.finishPubLocked(p, 0, nil)
}
