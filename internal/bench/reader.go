package bench

import (
	"sync/atomic"
	"time"
)

// subscriber reads one connection's messages and checks their sequence
// numbers. Its counters are atomic so that progress lines may read them.
type subscriber struct {
	conn *Conn

	// Owned by the read goroutine: the newest sequence number seen, and a
	// bitmap of the 64 before it and itself (bit 0: last), to tell a
	// duplicate from a late message.
	last, seen uint64

	received   atomic.Uint64 // message frames, duplicates included
	dups       atomic.Uint64
	outOfOrder atomic.Uint64 // arrived after a higher sequence number
	err        atomic.Pointer[error]
	done       chan struct{}
}

func newSubscriber(c *Conn) *subscriber { return &subscriber{conn: c, done: make(chan struct{})} }

// read counts the messages of channel until the connection ends,
// recording each one's latency from its send time. Messages that came in
// one read from the socket share its time of arrival.
func (s *subscriber) read(channel string, latency *Histogram) {
	defer close(s.done)
	err := s.readLoop(newMessageParser(channel), latency)
	s.err.Store(&err)
}

func (s *subscriber) readLoop(mp messageParser, latency *Histogram) error {
	var now int64
	for {
		p, err := s.conn.Next()
		if err != nil {
			return err
		}
		if s.conn.Fresh() || now == 0 {
			now = time.Now().UnixNano()
		}
		m, ok := mp.parse(p)
		if !ok {
			continue
		}
		latency.Record(time.Duration(now - m.sent))
		s.count(m.seq)
	}
}

// count files one sequence number.
func (s *subscriber) count(seq uint64) {
	s.received.Add(1)
	switch {
	case seq > s.last:
		if gap := seq - s.last; gap < 64 {
			s.seen = s.seen<<gap | 1
		} else {
			s.seen = 1
		}
		s.last = seq
	case s.last-seq < 64 && s.seen&(1<<(s.last-seq)) != 0:
		s.dups.Add(1)
	default:
		s.outOfOrder.Add(1)
		if s.last-seq < 64 {
			s.seen |= 1 << (s.last - seq)
		}
	}
}

// distinct returns the messages received once.
func (s *subscriber) distinct() uint64 { return s.received.Load() - s.dups.Load() }

// failed returns why the connection ended, or nil while it is open.
func (s *subscriber) failed() error {
	if e := s.err.Load(); e != nil {
		return *e
	}
	return nil
}

// subscriberTotals adds up a set of subscribers.
type subscriberTotals struct {
	received, distinct, dups, outOfOrder uint64
	failed                               int
	firstErr                             error
}

func totals(subs []*subscriber) subscriberTotals {
	var t subscriberTotals
	for _, s := range subs {
		t.received += s.received.Load()
		t.dups += s.dups.Load()
		t.outOfOrder += s.outOfOrder.Load()
		if err := s.failed(); err != nil {
			t.failed++
			if t.firstErr == nil {
				t.firstErr = err
			}
		}
	}
	t.distinct = t.received - t.dups
	return t
}
