package bench

import (
	"runtime"
	"strings"
	"testing"
)

// TestLoadCPURow flags a load side that used nearly all its cores, and
// only then.
func TestLoadCPURow(t *testing.T) {
	cores := float64(runtime.GOMAXPROCS(0))
	for _, tc := range []struct {
		used    float64
		flagged bool
	}{{0.1 * cores, false}, {0.85 * cores, false}, {0.95 * cores, true}, {cores, true}} {
		row := loadCPURow(CPUUse{CPU: 1, CoreUsed: tc.used})
		if got := strings.Contains(row.Value, "may limit what was measured"); got != tc.flagged {
			t.Errorf("%.2f cores used: %q, flagged %v, want %v", tc.used, row.Value, got, tc.flagged)
		}
	}
}
