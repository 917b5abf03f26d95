package herald

import (
	"errors"
	"runtime"
	"testing"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestInflateStopsAtLimit: a deflate bomb is stopped once limit bytes came
// out of it, not inflated whole and measured afterwards.
func TestInflateStopsAtLimit(t *testing.T) {
	const limit = 64 << 10
	bomb := heraldtest.Deflate(make([]byte, 8<<20))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := inflate(bomb, limit)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errInflatedTooBig) {
		t.Fatalf("inflate = %v, want errInflatedTooBig", err)
	}
	// The pooled decompressor, its window and the output up to the limit:
	// well under a MiB, where inflating the whole bomb takes 8.
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("inflating an 8 MiB bomb with a 64 KiB limit allocated %d bytes", n)
	}
}
