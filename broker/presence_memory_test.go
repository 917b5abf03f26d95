package broker_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// maxPresenceMemberBytes is the most a presence member may cost
// (docs/BENCHMARKS.md): the server keeps nothing per member besides what
// its broker keeps, so the broker's cost is the member's.
const maxPresenceMemberBytes = 300

// MeasurePresenceMember joins n members, spread over channels of 100, and
// returns the bytes of heap each costs. The members' ids are made before
// the first reading: a session holds them already.
func measurePresenceMember(t *testing.T, p broker.Presence, n int) float64 {
	t.Helper()
	members := make([]broker.Member, n)
	channels := make([]string, n/100)
	for i := range members {
		members[i] = broker.Member{Client: fmt.Sprintf("s_%08X", i), User: fmt.Sprintf("user%d", i%5000)}
	}
	for i := range channels {
		channels[i] = fmt.Sprintf("chat:room%d", i)
	}
	before := heraldtest.HeapAfterGC()
	for i, m := range members {
		if err := p.Join(context.Background(), channels[i%len(channels)], m, 1000); err != nil {
			t.Fatal(err)
		}
	}
	after := heraldtest.HeapAfterGC()
	runtime.KeepAlive(members)
	return float64(int64(after)-int64(before)) / float64(n)
}

// TestPresenceMemoryPerMember holds the memory broker's presence within
// maxPresenceMemberBytes per member, over 10,000 members.
func TestPresenceMemoryPerMember(t *testing.T) {
	m := broker.NewMemory(nil)
	defer m.Close()
	per := measurePresenceMember(t, m, 10_000)
	t.Logf("memory broker: %.0f bytes per presence member", per)
	if per > maxPresenceMemberBytes {
		t.Errorf("a presence member costs %.0f bytes, want at most %d", per, maxPresenceMemberBytes)
	}
}
