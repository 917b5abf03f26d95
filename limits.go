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
