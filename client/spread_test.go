package client_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
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

func (a *arrivals) total() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at)
}

// TestThousandClientsSpreadAfterRestart connects 1,000 clients, restarts
// the server, and counts the reconnection attempts per 100 ms window, as
// the clients report them and as the new server receives them. After a
// graceful restart (every client gets 1001 at the same moment) the clients
// spread their returns over 5 s; after a crash they retry after
// 250-500 ms, still spread over three windows.
func TestThousandClientsSpreadAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 clients")
	}
	for _, tc := range []struct {
		name    string
		restart func(*node)
		maxPeak int // of 1,000 in one 100 ms window
	}{
		{"graceful", func(n *node) { n.shutdown(); n.start() }, 100},
		{"crash", func(n *node) { n.kill(); n.start() }, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const clients = 1000
			var tried, received arrivals
			var connected atomic.Int64
			// Every connection gets its 1001 at once: the spread measured is
			// the clients' own.
			srv := startNode(t, herald.Options{DrainWindow: time.Millisecond})
			srv.onUpgrade = received.add
			opts := &client.Options{OnStateChange: func(ch client.StateChange) {
				switch ch.State {
				case client.StateConnecting:
					tried.add()
				case client.StateConnected:
					connected.Add(1)
				}
			}}
			cs := make([]*client.Client, clients)
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for i := w; i < clients; i += 4 {
						cs[i] = dialClient(t, srv.url(), opts)
					}
				})
			}
			wg.Wait()
			eventually(t, 10*time.Second, "first connections", func() bool { return connected.Load() == clients })

			connected.Store(0)
			tried.begin()
			received.begin()
			tc.restart(srv)
			eventually(t, 30*time.Second, "every client back", func() bool { return connected.Load() == clients })

			for _, a := range []struct {
				what string
				a    *arrivals
			}{{"attempts (client side)", &tried}, {"upgrades (server side)", &received}} {
				counts, peak := a.a.windows()
				t.Logf("%s: %d in all, peak %d in one 100 ms window; per window: %s",
					a.what, a.a.total(), peak, histogram(counts))
				if peak > tc.maxPeak {
					t.Errorf("%s: peak window holds %d of %d, want at most %d", a.what, peak, clients, tc.maxPeak)
				}
			}
		})
	}
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
