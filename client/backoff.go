package client

import (
	"math/rand/v2"
	"time"
)

// Defaults of Backoff, as PROTOCOL.md gives them.
const (
	DefaultBackoffBase       = 500 * time.Millisecond
	DefaultBackoffCap        = 30 * time.Second
	DefaultBackoffFloor      = 100 * time.Millisecond
	DefaultBackoffResetAfter = 10 * time.Second
	// GoingAwaySpread bounds the random delay before the first attempt
	// after the server closed with 1001 (shutting down or restarting).
	GoingAwaySpread = 5 * time.Second
)

// Backoff is the reconnection schedule. Before attempt n (n = 0 for the first
// retry) the client waits min(Cap, Base*2^n) * random(0.5, 1.0), and never
// less than Floor. The jitter stays in force at the cap, so clients that have
// been retrying for an hour are still spread out. Zero fields mean the
// defaults above.
type Backoff struct {
	Base  time.Duration // default 500 ms
	Cap   time.Duration // default 30 s
	Floor time.Duration // default 100 ms
	// ResetAfter is how long a connection must stay up, with all its
	// resubscriptions confirmed, before the attempt counter starts again
	// from 0. A connect-then-drop loop therefore keeps backing off.
	// Default 10 s.
	ResetAfter time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Base <= 0 {
		b.Base = DefaultBackoffBase
	}
	if b.Cap <= 0 {
		b.Cap = DefaultBackoffCap
	}
	if b.Floor <= 0 {
		b.Floor = DefaultBackoffFloor
	}
	if b.ResetAfter <= 0 {
		b.ResetAfter = DefaultBackoffResetAfter
	}
	return b
}

// Delay returns a random delay to wait before attempt n (n >= 0).
func (b Backoff) Delay(n int) time.Duration {
	b = b.withDefaults()
	d := b.Base
	for i := 0; i < n && d < b.Cap; i++ {
		d *= 2
	}
	d = min(d, b.Cap)
	return max(b.Floor, jitter(d, 0.5))
}

// GoingAway returns the delay before the first attempt after a 1001 close:
// random in [0, GoingAwaySpread], never less than Floor.
func (b Backoff) GoingAway() time.Duration {
	return max(b.withDefaults().Floor, jitter(GoingAwaySpread, 0))
}

// jitter returns d * random(lo, 1.0).
func jitter(d time.Duration, lo float64) time.Duration {
	return time.Duration(float64(d) * (lo + (1-lo)*rand.Float64()))
}

// retryAfter stretches delay to a server's Retry-After, spreading clients
// over half of it again so that they do not all return at the same instant.
func retryAfter(delay, after time.Duration) time.Duration {
	if after <= delay {
		return delay
	}
	return after + jitter(after/2, 0)
}
