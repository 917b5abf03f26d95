package herald

import "time"

// A connection's limits, kept by its reading goroutine: a token bucket on
// requests (and pings), and a window of recent bad requests.

// throttleFrame takes a token for a frame that is not a request (a ping, a
// pong, a fragment of a message not yet complete), waiting for it when the
// bucket is empty: such frames must be read, but a flood of them gets no more
// of the server than the rate.
func (s *session) throttleFrame() {
	for {
		ok, wait := s.limiter.take(time.Now(), s.srv.opts.Rate, s.srv.opts.Burst)
		if ok {
			return
		}
		time.Sleep(wait)
	}
}

// publishAllowed spends a publish's bytes from the connection's byte budget
// (Options.PublishBytesRate), or reports how long until they are there.
func (s *session) publishAllowed(now time.Time, n int) (bool, time.Duration) {
	o := s.srv.opts
	burst := max(o.PublishBytesBurst, o.MaxMessageBytes)
	return s.publishBytes.takeN(now, float64(o.PublishBytesRate), burst, float64(n))
}

// bucket is a token bucket rate limiter, used by the reader goroutine only.
type bucket struct {
	tokens float64
	last   time.Time
}

// tooManyErrors counts a bad request at now and reports whether
// Options.MaxErrors of them fell within Options.ErrorWindow. Used by the
// reading goroutine only.
func (s *session) tooManyErrors(now time.Time) bool {
	window := s.srv.opts.ErrorWindow
	kept := s.errTimes[:0]
	for _, t := range s.errTimes {
		if now.Sub(t) < window {
			kept = append(kept, t)
		}
	}
	s.errTimes = append(kept, now)
	return len(s.errTimes) >= s.srv.opts.MaxErrors
}

// take spends one token, or reports how long until one is available.
func (b *bucket) take(now time.Time, rate float64, burst int) (bool, time.Duration) {
	return b.takeN(now, rate, burst, 1)
}

// takeN spends n tokens, or reports how long until n are available (n is
// at most burst).
func (b *bucket) takeN(now time.Time, rate float64, burst int, n float64) (bool, time.Duration) {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else {
		b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens >= n {
		b.tokens -= n
		return true, 0
	}
	return false, time.Duration((n - b.tokens) / rate * float64(time.Second))
}
