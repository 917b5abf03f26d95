package herald

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/protocol"
)

// With a broker that takes several publishes at once (a
// broker.BatchPublisher, such as Redis), the publishes a connection's
// reader finds in one read go to the broker together, in one round trip,
// instead of one round trip each: a client with several publishes in
// flight gets them through as many at a time. Requests are still served in
// order: anything but a publish that passes its checks first sends the
// waiting publishes (flushPublishes).

// publishBatch is the publishes of one read waiting for the broker.
type publishBatch struct {
	ids   []uint64
	reqs  []broker.PublishRequest
	res   []broker.PublishResult
	start time.Time
}

var publishBatches = sync.Pool{New: func() any { return new(publishBatch) }}

// batchPublishes makes the reader collect publishes until flushPublishes,
// when the broker takes them together.
func (s *session) batchPublishes() {
	if _, ok := s.srv.broker.(broker.BatchPublisher); ok && s.pubs == nil {
		s.pubs = publishBatches.Get().(*publishBatch)
	}
}

// queuePublish adds a publish to the batch, reporting false when no batch
// is being collected.
func (s *session) queuePublish(id uint64, r broker.PublishRequest, start time.Time) bool {
	b := s.pubs
	if b == nil {
		return false
	}
	if len(b.reqs) == 0 {
		b.start = start
	}
	b.ids = append(b.ids, id)
	b.reqs = append(b.reqs, r)
	return true
}

// flushPublishes publishes the batch and replies to each of its publishes,
// then stops collecting.
func (s *session) flushPublishes() {
	b := s.pubs
	if b == nil {
		return
	}
	s.pubs = nil
	defer publishBatches.Put(b)
	if len(b.reqs) == 0 {
		return
	}
	b.res = slices.Grow(b.res[:0], len(b.reqs))[:len(b.reqs)]
	ctx, cancel := context.WithTimeout(s.srv.ctx, s.srv.opts.WriteTimeout)
	s.srv.broker.(broker.BatchPublisher).PublishBatch(ctx, b.reqs, b.res)
	cancel()
	for i, r := range b.res {
		observeSince(s.srv.metrics.publishSeconds, b.start)
		s.published(b.ids[i], b.reqs[i].Channel, r.Pos, r.Err)
	}
	clear(b.reqs)
	clear(b.res)
	b.ids, b.reqs, b.res = b.ids[:0], b.reqs[:0], b.res[:0]
}

// published replies to a publish.
func (s *session) published(id uint64, channel string, pos broker.StreamPosition, err error) {
	if err != nil {
		s.brokerError(id, "publish", err)
		return
	}
	if id != 0 {
		s.send(&protocol.Published{ID: id, Channel: channel, Offset: pos.Offset})
	}
}
