package client

import "sync"

// callbackQueue runs user callbacks one at a time, in the order they were
// pushed, on a goroutine of its own that exists only while there is work.
// push never blocks and never runs the callback itself, so the client can
// push while holding its lock.
type callbackQueue struct {
	mu      sync.Mutex
	fns     []func()
	running bool
	stopped bool
}

// push queues f. It does nothing after stop.
func (q *callbackQueue) push(f func()) { q.pushBounded(f, -1) }

// pushBounded queues f unless limit callbacks (limit >= 0) are waiting, and
// reports whether it did. After stop it queues nothing and reports true.
func (q *callbackQueue) pushBounded(f func(), limit int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return true
	}
	if limit >= 0 && len(q.fns) >= limit {
		return false
	}
	q.fns = append(q.fns, f)
	if !q.running {
		q.running = true
		go q.run()
	}
	return true
}

// stop discards the callbacks not yet started and refuses new ones. A
// callback already running finishes.
func (q *callbackQueue) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopped = true
	q.fns = nil
}

// len returns the number of callbacks waiting.
func (q *callbackQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.fns)
}

// seal refuses new callbacks; those already queued still run.
func (q *callbackQueue) seal() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopped = true
}

func (q *callbackQueue) run() {
	for {
		q.mu.Lock()
		if len(q.fns) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		f := q.fns[0]
		q.fns[0] = nil
		q.fns = q.fns[1:]
		q.mu.Unlock()
		f()
	}
}
