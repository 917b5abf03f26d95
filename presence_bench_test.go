package herald_test

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// BenchmarkJoinStorm subscribes 5,000 connections to one join-leave
// channel at once and counts the join frames the server writes (every one
// is read by a client). Without a bound that would be 5,000 × 4,999 / 2,
// about 12.5 million; with the default bound of 1,000 members, at most
// 1,000 joins are announced, each to at most 1,000 subscribers. Run with
//
//	go test -run='^$' -bench=JoinStorm -benchtime=1x .
func BenchmarkJoinStorm(b *testing.B) {
	const n = 5000
	for range b.N {
		srv := startServerTB(b, &herald.Options{
			Anonymous:      herald.AnonymousAllow,
			MaxConnections: 2 * n,
			Namespaces:     map[string]herald.NamespaceOptions{"chat": {Presence: true, JoinLeave: true}},
		})
		conns := make([]*heraldtest.Conn, n)
		for i := range conns {
			conns[i] = heraldtest.DialWelcome(b, srv.url, nil)
		}
		var joins, subscribed atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for _, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.SendText(`{"type":"subscribe","id":1,"channel":"chat:storm"}`)
				wait := time.Minute // for the subscribed reply
				for {
					f, err := c.Next(wait)
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() && wait < time.Minute {
						return // quiet for 2 s after its reply: the storm is over
					}
					if err != nil {
						b.Error(err)
						return
					}
					switch f.Type {
					case "join":
						joins.Add(1)
					case "subscribed":
						subscribed.Add(1)
						wait = 2 * time.Second
					}
				}
			}()
		}
		wg.Wait()
		if subscribed.Load() != n {
			b.Fatalf("%d of %d subscribed", subscribed.Load(), n)
		}
		b.ReportMetric(float64(joins.Load()), "join-frames")
		b.ReportMetric(float64(time.Since(start)-2*time.Second)/1e9, "storm-s")
		if joins.Load() > 1000*1000 {
			b.Fatalf("%d join frames, want at most 1,000 × 1,000", joins.Load())
		}
	}
}

// startServerTB is startServer for benchmarks.
func startServerTB(tb testing.TB, opts *herald.Options) *testServer {
	t, ok := tb.(*testing.T)
	if ok {
		return startServer(t, opts)
	}
	return startServerAny(tb, opts)
}
