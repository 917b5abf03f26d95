package client_test

import (
	"testing"
	"time"

	"github.com/heraldhq/herald/client"
)

// TestBackoffDelayBounds checks every attempt's delay against PROTOCOL.md:
// min(cap, base*2^n) * random(0.5, 1.0), never below the floor, never zero.
func TestBackoffDelayBounds(t *testing.T) {
	var b client.Backoff
	for n := range 40 {
		d := min(30*time.Second, 500*time.Millisecond<<min(n, 20))
		lo, hi := max(100*time.Millisecond, d/2), d
		for range 2000 {
			got := b.Delay(n)
			if got < lo || got > hi {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", n, got, lo, hi)
			}
		}
	}
}

// TestBackoffJitterAtCap checks that clients that have retried for long are
// still spread over [cap/2, cap], not piled up at the cap.
func TestBackoffJitterAtCap(t *testing.T) {
	var b client.Backoff
	const samples = 20000
	var buckets [4]int // quarters of [15s, 30s]
	for range samples {
		d := b.Delay(1000)
		q := int((d - 15*time.Second) * 4 / (15 * time.Second))
		buckets[min(q, 3)]++
	}
	for i, n := range buckets {
		if n < samples/4*8/10 || n > samples/4*12/10 {
			t.Errorf("quarter %d of [15s, 30s] holds %d of %d delays, want about a quarter: %v", i, n, samples, buckets)
		}
	}
}

// TestBackoffFloor checks the floor wins over a tiny base.
func TestBackoffFloor(t *testing.T) {
	b := client.Backoff{Base: time.Millisecond, Floor: 100 * time.Millisecond}
	for range 1000 {
		if d := b.Delay(0); d != 100*time.Millisecond {
			t.Fatalf("Delay(0) = %v with base 1ms, want the 100ms floor", d)
		}
	}
}

// TestBackoffGoingAway checks the delay after a 1001: spread over [0, 5s],
// clamped at the floor, so a restarting server is not hit by everyone at once.
func TestBackoffGoingAway(t *testing.T) {
	var b client.Backoff
	const samples = 10000
	var buckets [5]int // seconds
	for range samples {
		d := b.GoingAway()
		if d < 100*time.Millisecond || d > client.GoingAwaySpread {
			t.Fatalf("GoingAway() = %v, want within [100ms, 5s]", d)
		}
		buckets[min(int(d/time.Second), 4)]++
	}
	for i, n := range buckets {
		if n < samples/5*8/10 || n > samples/5*12/10 {
			t.Errorf("second %d of [0, 5s] holds %d of %d delays, want about a fifth: %v", i, n, samples, buckets)
		}
	}
}
