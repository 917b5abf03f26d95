package herald

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// heartbeat is the one scheduler that pings every connection and terminates
// the dead ones. Connections sit in a min-heap ordered by when they next need
// attention: their next ping, or the moment their silence reaches
// interval+timeout. Reads only move a connection's deadline later, so the
// heap is not touched per frame: an entry that wakes early is re-filed.
//
// The scheduler wakes on a coarse tick, not at each connection's own time:
// everything due by a tick is done together at that tick, so that an idle
// server wakes a few times a second however many connections it holds,
// rather than once per ping (400 times a second for 10,000 connections at
// the default interval). Pings are planned on the tick's grid, and what is
// due between two ticks waits for the next one: a dead peer is terminated
// at most one tick after its interval+timeout of silence, an expired hello
// or token is closed at most one tick after its time.
type heartbeat struct {
	metrics           *metrics
	interval, timeout time.Duration
	tick              time.Duration // the scheduler's resolution, see heartbeatTick
	start             time.Time     // clock origin: times are durations since start

	mu     sync.Mutex
	queue  hbQueue
	wakeAt time.Duration // when run wakes next, unless woken
	wake   chan struct{}
}

// maxHeartbeatTick is the scheduler's tick with the default heartbeat
// (25 s interval, 15 s timeout). Half a second makes two wake-ups a second
// for any number of connections, which costs next to nothing, while a dead
// peer is found at most 0.5 s (1.3% of the 40 s it is given) late and first
// pings still spread over 26 ticks of [interval/2, interval]. A finer tick
// buys precision nobody needs with more wake-ups; a coarser one makes each
// tick's burst of pings and pongs larger and the bounds looser.
const maxHeartbeatTick = 500 * time.Millisecond

// heartbeatTick is the tick for an interval and timeout: maxHeartbeatTick,
// or finer for short heartbeats (tests, or a deployment that wants dead
// peers found within a second), so that the tick stays a twentieth of the
// interval and a tenth of the timeout at most.
func heartbeatTick(interval, timeout time.Duration) time.Duration {
	return max(min(maxHeartbeatTick, interval/20, timeout/10), time.Millisecond)
}

// hbEntry is a session's place in the heartbeat queue, guarded by
// heartbeat.mu.
type hbEntry struct {
	index    int32 // in the heap; -1 when not in it
	hello    bool  // expiry is the hello timeout, not the token's
	due      time.Duration
	nextPing time.Duration
	expiry   time.Duration // when credentials expire (close 4001); 0: never
}

// hbActions are what one tick found due, done outside the lock.
type hbActions struct {
	ping, dead, expired []*session
}

func newHeartbeat(interval, timeout time.Duration, m *metrics) *heartbeat {
	return &heartbeat{metrics: m, interval: interval, timeout: timeout, tick: heartbeatTick(interval, timeout),
		start: time.Now(), wake: make(chan struct{}, 1)}
}

func (hb *heartbeat) now() time.Duration { return time.Since(hb.start) }

// ceilTick is the first tick at or after t.
func (hb *heartbeat) ceilTick(t time.Duration) time.Duration {
	return (t + hb.tick - 1) / hb.tick * hb.tick
}

// add schedules s. Its first ping is at a tick picked at random in
// [interval/2, interval] from now, so that connections made together do not
// ping together.
func (hb *heartbeat) add(s *session) {
	hb.mu.Lock()
	now := hb.now()
	lo, hi := hb.ceilTick(now+hb.interval/2), (now+hb.interval)/hb.tick*hb.tick
	first := lo
	if hi > lo {
		first += rand.N((hi-lo)/hb.tick+1) * hb.tick
	}
	s.hb.nextPing = first
	s.hb.due = hb.dueOf(s)
	heap.Push(&hb.queue, s)
	hb.wakeIfSoonerLocked(s)
	hb.mu.Unlock()
}

// wakeIfSoonerLocked wakes run when s, just filed or re-filed, is due before
// the tick run sleeps until. hb.mu must be held.
func (hb *heartbeat) wakeIfSoonerLocked(s *session) {
	if s.hb.index != 0 || hb.ceilTick(s.hb.due) >= hb.wakeAt {
		return
	}
	hb.wakeAt = hb.ceilTick(s.hb.due) // a second add before run wakes need not wake it again
	select {
	case hb.wake <- struct{}{}:
	default:
	}
}

func (hb *heartbeat) remove(s *session) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if s.hb.index >= 0 {
		heap.Remove(&hb.queue, int(s.hb.index))
	}
}

// deadline is when s counts as dead if nothing more arrives.
func (hb *heartbeat) deadline(s *session) time.Duration {
	return time.Duration(s.lastRead.Load()) + hb.interval + hb.timeout
}

func (hb *heartbeat) dueOf(s *session) time.Duration {
	due := min(s.hb.nextPing, hb.deadline(s))
	if s.hb.expiry != 0 {
		due = min(due, s.hb.expiry)
	}
	return due
}

// setExpiry makes the scheduler close s with 4001 at the wall clock time at,
// when its hello is due (hello) or its token expires; a zero at clears it.
func (hb *heartbeat) setExpiry(s *session, at time.Time, hello bool) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	s.hb.expiry, s.hb.hello = 0, hello
	if d := time.Until(at); !at.IsZero() && d < farFuture {
		s.hb.expiry = max(hb.now()+d, 1)
	}
	if s.hb.index >= 0 {
		s.hb.due = hb.dueOf(s)
		heap.Fix(&hb.queue, int(s.hb.index))
		hb.wakeIfSoonerLocked(s)
	}
}

// farFuture is where an expiry counts as none: tokens often say "never"
// with an exp of 9999-12-31, which a time.Duration cannot hold.
const farFuture = 100 * 365 * 24 * time.Hour

// run pings and terminates connections, a tick's worth at a time, until ctx
// ends. Socket work happens outside the scheduler's lock.
func (hb *heartbeat) run(ctx context.Context) {
	timer := time.NewTimer(hb.interval)
	defer timer.Stop()
	var a hbActions
	for {
		hb.takeDue(&a)
		for _, s := range a.ping {
			s.ping()
		}
		for _, s := range a.dead {
			s.terminate("heartbeat timeout")
		}
		hb.metrics.heartbeatKills.Add(float64(len(a.dead)))
		for _, s := range a.expired {
			s.expire()
		}
		clear(a.ping)
		clear(a.dead)
		clear(a.expired)
		a = hbActions{a.ping[:0], a.dead[:0], a.expired[:0]}
		timer.Reset(hb.untilNext())
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-hb.wake:
		}
	}
}

// takeDue takes every connection that is due: the dead leave the queue, the
// expired are closed, the rest get a ping when theirs is due; all but the
// dead are re-filed. A ping is planned an interval after the previous one
// was planned, so pings keep their interval whatever the tick's lateness.
func (hb *heartbeat) takeDue(a *hbActions) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	now := hb.now()
	for len(hb.queue) > 0 && hb.queue[0].hb.due <= now {
		s := hb.queue[0]
		if hb.deadline(s) <= now {
			heap.Pop(&hb.queue)
			a.dead = append(a.dead, s)
			continue
		}
		if s.hb.expiry != 0 && s.hb.expiry <= now {
			a.expired = append(a.expired, s)
			s.hb.expiry = 0
		}
		if s.hb.nextPing <= now {
			a.ping = append(a.ping, s)
			s.hb.nextPing += hb.interval
			if s.hb.nextPing <= now { // the scheduler was held up for an interval
				s.hb.nextPing = hb.ceilTick(now + hb.interval)
			}
		}
		s.hb.due = hb.dueOf(s)
		heap.Fix(&hb.queue, 0)
	}
}

func (s *session) expiryReason() string {
	hb := s.srv.heartbeat
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if s.hb.hello {
		return "no valid hello within hello_timeout"
	}
	return "token expired"
}

// untilNext is how long run sleeps: until the first tick at or after the
// earliest due time, or an interval when nothing is queued.
func (hb *heartbeat) untilNext() time.Duration {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	now := hb.now()
	hb.wakeAt = now + hb.interval
	if len(hb.queue) > 0 {
		hb.wakeAt = hb.ceilTick(hb.queue[0].hb.due)
	}
	return max(hb.wakeAt-now, 0)
}

// hbQueue is a container/heap of sessions ordered by hb.due.
type hbQueue []*session

func (q hbQueue) Len() int           { return len(q) }
func (q hbQueue) Less(i, j int) bool { return q[i].hb.due < q[j].hb.due }
func (q hbQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].hb.index, q[j].hb.index = int32(i), int32(j)
}
func (q *hbQueue) Push(x any) {
	s := x.(*session)
	s.hb.index = int32(len(*q))
	*q = append(*q, s)
}
func (q *hbQueue) Pop() any {
	old := *q
	s := old[len(old)-1]
	old[len(old)-1] = nil
	s.hb.index = -1
	*q = old[:len(old)-1]
	return s
}
