package client_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
)

// arrivals counts events per 100 ms window after a start time.
type arrivals struct {
	mu    sync.Mutex
	start time.Time
	on    bool
	at    []time.Duration
}

func (a *arrivals) begin() {
	a.mu.Lock()
	a.start, a.on = time.Now(), true
	a.mu.Unlock()
}

func (a *arrivals) add() {
	a.mu.Lock()
	if a.on {
		a.at = append(a.at, time.Since(a.start))
	}
	a.mu.Unlock()
}

// windows returns the count per 100 ms window, and the peak.
func (a *arrivals) windows() (counts []int, peak int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, d := range a.at {
		i := int(d / (100 * time.Millisecond))
		for len(counts) <= i {
			counts = append(counts, 0)
		}
		counts[i]++
		peak = max(peak, counts[i])
	}
	return counts, peak
}

// quantiles returns the first arrival and the 5th and 95th percentiles.
func (a *arrivals) quantiles() (first, p5, p95 time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	at := slices.Sorted(slices.Values(a.at))
	if len(at) == 0 {
		return 0, 0, 0
	}
	return at[0], at[len(at)*5/100], at[len(at)*95/100]
}

func (a *arrivals) total() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at)
}

// TestThousandClientsSpreadAfterRestart connects 1,000 clients, restarts
// the server, and counts the reconnection attempts per 100 ms window, as
// the clients make them (their TCP dials) and as the new server receives
// them (upgrade requests).
//
// After a graceful restart every client gets 1001 at the same moment (the
// server's own drain window is set to 1 ms, so the spread measured is the
// clients'): they return over [0, 5s] (about 20 per 100 ms window), and the
// peak window must hold at most a fifth of them, well under half even when
// a loaded machine bunches the timestamps. After a crash PROTOCOL.md has every client retry after
// 500ms * random(0.5, 1.0): no attempt before 250 ms, and the attempts
// spread over the 250 ms that follow, so about 40% fall into the busiest
// window; the test checks that floor and spread and logs the counts.
func TestThousandClientsSpreadAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 clients")
	}
	t.Run("graceful", func(t *testing.T) {
		tried, received := restartThousand(t, func(n *testnode.Node) { n.Shutdown(); n.Start() })
		for _, a := range []*arrivals{tried, received} {
			if _, peak := a.windows(); peak > 200 {
				t.Errorf("peak window holds %d of 1000 attempts, want at most 200", peak)
			}
		}
	})
	t.Run("crash", func(t *testing.T) {
		tried, _ := restartThousand(t, func(n *testnode.Node) { n.Kill(); n.Start() })
		first, p5, p95 := tried.quantiles()
		t.Logf("attempts after the crash: first at %v, 5%% by %v, 95%% by %v", first, p5, p95)
		if first < 250*time.Millisecond {
			t.Errorf("first attempt %v after the crash, want none before 250ms", first)
		}
		if p95-p5 < 150*time.Millisecond {
			t.Errorf("attempts spread over %v (5%% to 95%%), want at least 150ms", p95-p5)
		}
	})
}

// restartThousand connects 1,000 clients to a node, restarts it, waits for
// every client to be back, and returns the attempts counted by the clients'
// dials and by the server's upgrades, from the restart on.
func restartThousand(t *testing.T, restart func(*testnode.Node)) (tried, received *arrivals) {
	const clients = 1000
	tried, received = &arrivals{}, &arrivals{}
	var connected atomic.Int64
	srv := testnode.Start(t, herald.Options{DrainWindow: time.Millisecond})
	srv.OnUpgrade = received.add
	var d net.Dialer
	opts := &client.Options{
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			tried.add()
			return d.DialContext(ctx, network, addr)
		},
		OnStateChange: func(ch client.StateChange) {
			if ch.State == client.StateConnected {
				connected.Add(1)
			}
		},
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < clients; i += 4 {
				dialClient(t, srv.URL(), opts)
			}
		})
	}
	wg.Wait()
	eventually(t, 10*time.Second, "first connections", func() bool { return connected.Load() == clients })

	connected.Store(0)
	tried.begin()
	received.begin()
	restart(srv)
	eventually(t, 30*time.Second, "every client back", func() bool { return connected.Load() == clients })
	for _, a := range []struct {
		what string
		a    *arrivals
	}{{"attempts (client dials)", tried}, {"upgrades (server side)", received}} {
		counts, peak := a.a.windows()
		t.Logf("%s: %d in all, peak %d in one 100 ms window; per window: %s",
			a.what, a.a.total(), peak, histogram(counts))
	}
	return tried, received
}

func histogram(counts []int) string {
	var b strings.Builder
	for i, n := range counts {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, n)
	}
	return b.String()
}
