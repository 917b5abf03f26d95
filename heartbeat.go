package herald

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// heartbeat is the one scheduler that pings every connection and terminates
// the dead ones. Connections sit in a min-heap ordered by when they next need
// attention: their next ping, or the moment their silence reaches
// interval+timeout. Reads only move a connection's deadline later, so the
// heap is not touched per frame: an entry that wakes early is re-filed.
type heartbeat struct {
	interval, timeout time.Duration
	start             time.Time // clock origin: times are durations since start

	mu    sync.Mutex
	queue hbQueue
	wake  chan struct{}
}

// hbEntry is a session's place in the heartbeat queue, guarded by
// heartbeat.mu.
type hbEntry struct {
	index    int // in the heap; -1 when not in it
	due      time.Duration
	nextPing time.Duration
}

func newHeartbeat(interval, timeout time.Duration) *heartbeat {
	return &heartbeat{interval: interval, timeout: timeout, start: time.Now(), wake: make(chan struct{}, 1)}
}

func (hb *heartbeat) now() time.Duration { return time.Since(hb.start) }

// add schedules s. Its first ping is at a random point in
// [interval/2, interval] so that connections made together do not ping
// together.
func (hb *heartbeat) add(s *session) {
	half := hb.interval / 2
	first := half + rand.N(hb.interval-half+1)
	hb.mu.Lock()
	s.hb.nextPing = hb.now() + first
	s.hb.due = hb.dueOf(s)
	heap.Push(&hb.queue, s)
	top := s.hb.index == 0
	hb.mu.Unlock()
	if top {
		select {
		case hb.wake <- struct{}{}:
		default:
		}
	}
}

func (hb *heartbeat) remove(s *session) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if s.hb.index >= 0 {
		heap.Remove(&hb.queue, s.hb.index)
	}
}

// deadline is when s counts as dead if nothing more arrives.
func (hb *heartbeat) deadline(s *session) time.Duration {
	return time.Duration(s.lastRead.Load()) + hb.interval + hb.timeout
}

func (hb *heartbeat) dueOf(s *session) time.Duration { return min(s.hb.nextPing, hb.deadline(s)) }

// run pings and terminates connections until ctx ends. Socket work happens
// outside the scheduler's lock.
func (hb *heartbeat) run(ctx context.Context) {
	timer := time.NewTimer(hb.interval)
	defer timer.Stop()
	var ping, dead []*session
	for {
		ping, dead = hb.tick(ping[:0], dead[:0])
		for _, s := range ping {
			s.sendControl(ws.OpPing, nil)
		}
		for _, s := range dead {
			s.terminate("heartbeat timeout")
		}
		clear(ping)
		clear(dead)
		timer.Reset(hb.untilNext())
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-hb.wake:
		}
	}
}

// tick takes every connection that is due: the dead leave the queue, the
// rest get a ping when theirs is due and are re-filed.
func (hb *heartbeat) tick(ping, dead []*session) ([]*session, []*session) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	now := hb.now()
	for len(hb.queue) > 0 && hb.queue[0].hb.due <= now {
		s := hb.queue[0]
		if hb.deadline(s) <= now {
			heap.Pop(&hb.queue)
			dead = append(dead, s)
			continue
		}
		if s.hb.nextPing <= now {
			ping = append(ping, s)
			s.hb.nextPing = now + hb.interval
		}
		s.hb.due = hb.dueOf(s)
		heap.Fix(&hb.queue, 0)
	}
	return ping, dead
}

func (hb *heartbeat) untilNext() time.Duration {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if len(hb.queue) == 0 {
		return hb.interval
	}
	return max(hb.queue[0].hb.due-hb.now(), 0)
}

// hbQueue is a container/heap of sessions ordered by hb.due.
type hbQueue []*session

func (q hbQueue) Len() int           { return len(q) }
func (q hbQueue) Less(i, j int) bool { return q[i].hb.due < q[j].hb.due }
func (q hbQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].hb.index, q[j].hb.index = i, j
}
func (q *hbQueue) Push(x any) {
	s := x.(*session)
	s.hb.index = len(*q)
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
