package client

import (
	"slices"
	"time"
)

// pubQueue is the offline queue: publishes waiting for a ready connection,
// oldest first, with their total size.
type pubQueue struct {
	items []*pub
	bytes int
}

// fits reports whether p may join the queue under the bounds of o.
func (q *pubQueue) fits(p *pub, o *Options) bool {
	return o.QueueMessages > 0 && len(q.items) < o.QueueMessages && q.bytes+p.size <= o.QueueBytes
}

func (q *pubQueue) push(p *pub) {
	q.items = append(q.items, p)
	q.bytes += p.size
}

// prepend puts ps, in their order, before everything queued. Publishes that
// were sent once go first, so retries keep the original order.
func (q *pubQueue) prepend(ps []*pub) {
	q.items = append(slices.Clone(ps), q.items...)
	for _, p := range ps {
		q.bytes += p.size
	}
}

// remove takes p out of the queue and reports whether it was there.
func (q *pubQueue) remove(p *pub) bool {
	i := slices.Index(q.items, p)
	if i < 0 {
		return false
	}
	q.items = slices.Delete(q.items, i, i+1)
	q.bytes -= p.size
	return true
}

// drain empties the queue and returns what it held, oldest first.
func (q *pubQueue) drain() []*pub {
	items := q.items
	q.items, q.bytes = nil, 0
	return items
}

// queueLocked puts p in the offline queue, with a timer that fails it when
// it is still there after Options.QueueTimeout (counted from when it first
// entered the queue).
func (c *Client) queueLocked(p *pub, front bool) {
	now := time.Now()
	if p.deadline.IsZero() {
		p.deadline = now.Add(c.opts.QueueTimeout)
	}
	if front {
		c.queue.prepend([]*pub{p})
	} else {
		c.queue.push(p)
	}
	p.queued = true
	p.timer = time.AfterFunc(p.deadline.Sub(now), func() { c.expire(p) })
}

// requeueLocked puts publishes that were sent but not confirmed back at the
// front of the queue, in order. Their keys make the resend safe.
func (c *Client) requeueLocked(ps []*pub) {
	for i := len(ps) - 1; i >= 0; i-- {
		if p := ps[i]; !p.finished {
			p.callID = 0
			c.queueLocked(p, true)
		}
	}
}

// takeLocked removes p from the queue, if it is there, and stops its timer.
func (c *Client) takeLocked(p *pub) bool {
	if !p.queued {
		return false
	}
	p.queued = false
	p.timer.Stop()
	return c.queue.remove(p)
}

// takeAllLocked empties the queue and returns what it held, oldest first.
func (c *Client) takeAllLocked() []*pub {
	ps := c.queue.drain()
	for _, p := range ps {
		p.queued = false
		p.timer.Stop()
	}
	return ps
}

func (c *Client) expire(p *pub) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.takeLocked(p) {
		c.finishPubLocked(p, 0, ErrQueueTimeout)
	}
}
