package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// publisher publishes on one connection with at most inflight requests
// waiting for their reply, and measures the time to each reply.
type publisher struct {
	conn    *Conn
	channel string
	size    int
	tokens  chan struct{} // one per publish awaiting its reply
	sentAt  []atomic.Int64
	acks    *Histogram

	acked, failed atomic.Uint64
	lastError     atomic.Pointer[string]
	done          chan struct{} // closed when the reply reader ends
	err           error

	// Owned by the publishing goroutine.
	id        uint64
	data, buf []byte
	chat      bool // realistic chat JSON (appendChatPayload)
}

func newPublisher(c *Conn, channel string, size, inflight int, acks *Histogram) *publisher {
	inflight = max(inflight, 1)
	p := &publisher{conn: c, channel: channel, size: size, acks: acks,
		tokens: make(chan struct{}, inflight), sentAt: make([]atomic.Int64, inflight), done: make(chan struct{})}
	go p.readReplies()
	return p
}

// publish sends publication seq stamped with sent, once fewer than
// inflight publishes wait for their reply.
func (p *publisher) publish(ctx context.Context, seq uint64, sent time.Time) error {
	select {
	case p.tokens <- struct{}{}:
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
	p.id++
	p.sentAt[p.id%uint64(len(p.sentAt))].Store(time.Now().UnixNano())
	if p.chat {
		p.data = appendChatPayload(p.data[:0], seq, sent, p.size)
	} else {
		p.data = appendPayload(p.data[:0], seq, sent, p.size)
	}
	p.buf = appendPublish(p.buf[:0], p.id, p.channel, p.data)
	return p.conn.WriteText(p.buf)
}

func (p *publisher) readReplies() {
	defer close(p.done)
	for {
		msg, err := p.conn.Next()
		if err != nil {
			p.err = err
			return
		}
		now := time.Now().UnixNano()
		r, ok := parseReply(msg)
		if !ok {
			continue
		}
		p.acks.Record(time.Duration(now - p.sentAt[r.id%uint64(len(p.sentAt))].Load()))
		if r.ok {
			p.acked.Add(1)
		} else {
			p.failed.Add(1)
			s := string(msg)
			p.lastError.Store(&s)
		}
		<-p.tokens
	}
}

// wait waits until every publish has its reply, or timeout.
func (p *publisher) wait(timeout time.Duration) error {
	deadline := time.After(timeout)
	for range cap(p.tokens) {
		select {
		case p.tokens <- struct{}{}:
		case <-p.done:
			return p.err
		case <-deadline:
			return errors.New("publish replies missing after " + timeout.String())
		}
	}
	for range cap(p.tokens) {
		<-p.tokens
	}
	return nil
}

// errorText describes the publish errors, if any.
func (p *publisher) errorText() string {
	if s := p.lastError.Load(); s != nil {
		return fmt.Sprintf("%d errors, last %s", p.failed.Load(), *s)
	}
	return ""
}

// defaultInflight is the publishes in flight when none is set: 1 at the
// maximum rate, which then is as fast as replies allow; 64 at a fixed rate,
// so that waiting for replies does not hold the publisher behind its
// schedule (latency counts from the schedule, and would grow without end).
func defaultInflight(inflight int, rate float64) int {
	switch {
	case inflight > 0:
		return inflight
	case rate > 0:
		return 64
	}
	return 1
}

// pace calls send with sequence numbers 1, 2, ... until ctx ends or until
// passes: rate times per second with the scheduled time as stamp, or when
// rate is 0 as fast as send returns, with the current time. Stamping the
// schedule counts a stalled send's delay in the latency of the messages it
// held back.
func pace(ctx context.Context, until time.Time, rate float64, send func(seq uint64, stamp time.Time) error) error {
	start := time.Now()
	for seq := uint64(1); ; seq++ {
		stamp := time.Now()
		if rate > 0 {
			stamp = start.Add(time.Duration(float64(seq-1) / rate * float64(time.Second)))
			if d := time.Until(stamp); d > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(d):
				}
			}
		}
		if ctx.Err() != nil || !stamp.Before(until) {
			return nil
		}
		if err := send(seq, stamp); err != nil {
			return err
		}
	}
}
