package redisbroker_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/broker/redisbroker"
	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
)

// A burst of publications that Redis sends a node one message at a time,
// while the node is still busy with an earlier one, reaches each subscriber
// in fewer socket writes than publications: the node delivers what has
// arrived as one batch, and a subscriber's writer waits until the batch is
// queued. Without that, the writers of the first subscribers write each
// publication while the node is still queueing it for the others.
func TestBurstFromRedisReachesConnectionsInFewerWrites(t *testing.T) {
	r := startRedis(t)
	prefix := "burst:"
	pub := newBroker(t, r, redisbroker.Options{Prefix: prefix})
	sub := newBroker(t, r, redisbroker.Options{Prefix: prefix})
	reg := prometheus.NewRegistry()
	node := testnode.Start(t, herald.Options{Broker: sub, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	const conns, n = 100, 50
	cs := make([]*heraldtest.Conn, conns)
	for i := range cs {
		cs[i] = heraldtest.DialWelcome(t, node.URL(), nil)
		cs[i].Subscribe(t, 1, "feed", nil)
	}
	before := metricValue(t, reg, "herald_socket_writes_total")

	// The node is busy: its deliveries wait while the publications arrive
	// one by one, each published after the previous one was acknowledged.
	release := redisbroker.HoldDeliveries(sub)
	ctx := context.Background()
	for i := range n {
		if _, err := pub.Publish(ctx, "feed", fmt.Appendf(nil, "%d", i+1), broker.PublishOptions{}); err != nil {
			release()
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); redisbroker.Inbox(sub) < n-1; {
		if time.Now().After(deadline) {
			release()
			t.Fatalf("%d of %d publications reached the node", redisbroker.Inbox(sub)+1, n)
		}
		time.Sleep(time.Millisecond)
	}
	release()

	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			for i := range n {
				f, err := c.Next(10 * time.Second)
				if err != nil || f.Type != "message" || f.Fields()["data"] != float64(i+1) {
					t.Errorf("message %d: %v %v", i+1, f, err)
					return
				}
			}
		})
	}
	wg.Wait()
	// The deliverer holds the first publication alone when the node is
	// held: two batches, so at most two writes to each connection.
	if writes := metricValue(t, reg, "herald_socket_writes_total") - before; writes > 2*conns {
		t.Errorf("%d publications to %d connections took %v socket writes, want at most %d", n, conns, writes, 2*conns)
	}
}

// metricValue returns the value of the registry's counter name.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
