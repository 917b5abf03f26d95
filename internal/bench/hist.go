package bench

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram counts durations in log-linear buckets, 32 per power of two, so
// a quantile is within about 3% of the true value. Record is safe for
// concurrent use and does not allocate; the zero value is ready.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
}

const (
	subBits     = 5 // 32 sub-buckets per power of two
	histBuckets = (64 - subBits + 1) << subBits
)

// bucketOf maps v to its bucket: values below 64 have one bucket each;
// above, a bucket covers 1/32 of its power of two.
func bucketOf(v uint64) int {
	shift := max(bits.Len64(v)-subBits-1, 0)
	return shift<<subBits + int(v>>shift)
}

// bucketValue is the middle of bucket i.
func bucketValue(i int) uint64 {
	if i < 2<<subBits {
		return uint64(i)
	}
	shift := i>>subBits - 1
	low := uint64(i-shift<<subBits) << shift
	return low + (1<<shift)/2
}

// Record counts d; a negative d counts as 0.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(uint64(v))].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest recorded value.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns the value below which the fraction q of the recorded
// values fall (q in [0, 1]), or 0 when nothing was recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(time.Duration(bucketValue(i)), h.Max())
		}
	}
	return h.Max()
}

// Latency is the summary of a Histogram reported by the scenarios.
type Latency struct {
	P50  Millis `json:"p50_ms"`
	P99  Millis `json:"p99_ms"`
	P999 Millis `json:"p999_ms"`
	Max  Millis `json:"max_ms"`
}

// Summary returns h's p50, p99, p99.9 and maximum.
func (h *Histogram) Summary() Latency {
	return Latency{Millis(h.Quantile(0.5)), Millis(h.Quantile(0.99)), Millis(h.Quantile(0.999)), Millis(h.Max())}
}

// Millis is a duration reported in milliseconds.
type Millis time.Duration

// MarshalJSON writes the duration as milliseconds with µs precision.
func (m Millis) MarshalJSON() ([]byte, error) {
	return []byte(formatMillis(time.Duration(m))), nil
}

func (m Millis) String() string { return formatMillis(time.Duration(m)) + " ms" }
