package client_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
)

// TestReconnectWithManySubscriptionsIsPaced: a client holding 128
// subscriptions, with 40 publishes in its offline queue, comes back to a
// server whose rate limit (100/s, burst 40) is far below what it has to
// send. It resubscribes every channel and delivers every publication on
// its first connection, paced so that the server never has to answer
// rate_limited: no 4029, no second reconnect.
func TestReconnectWithManySubscriptionsIsPaced(t *testing.T) {
	const channels, queued = 128, 40
	b := broker.NewMemory(nil)
	t.Cleanup(func() { b.Close() })
	node := testnode.Start(t, herald.Options{Broker: b, Rate: 1e6, Burst: 1e6})
	st := newStates()
	c := dialClient(t, node.URL(), &client.Options{OnStateChange: st.record})
	got := make([]seen, channels)
	var recovered atomic.Int32
	for i := range channels {
		_, err := c.Subscribe(t.Context(), fmt.Sprintf("ch-%d", i), got[i].handle, client.OnRecovery(func(r client.Recovery) {
			if r.Recovered {
				recovered.Add(1)
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
	}
	node.Kill()
	st.await(t, client.StateDisconnected, 5*time.Second)
	var wg sync.WaitGroup
	for i := range queued {
		wg.Go(func() {
			if _, err := c.Publish(t.Context(), fmt.Sprintf("ch-%d", i), numbered{i}); err != nil {
				t.Errorf("queued publish to ch-%d: %v", i, err)
			}
		})
	}
	eventually(t, 5*time.Second, "the publishes to queue", func() bool { return c.Queued() == queued })

	reg := prometheus.NewRegistry()
	node.Options = herald.Options{Broker: b, Rate: 100, Burst: 40, Registry: reg}
	st.mu.Lock()
	before := len(st.all)
	st.mu.Unlock()
	node.Start()
	wg.Wait()
	eventually(t, 10*time.Second, "every channel resubscribed", func() bool { return recovered.Load() == channels })
	for i := range queued {
		eventually(t, 5*time.Second, fmt.Sprintf("the publication on ch-%d", i), func() bool { return got[i].count() == 1 })
	}

	st.mu.Lock()
	after := st.all[before:]
	st.mu.Unlock()
	connected := 0
	for _, ch := range after {
		switch ch.State {
		case client.StateConnected:
			connected++
		case client.StateDisconnected:
			if connected > 0 {
				t.Errorf("disconnected after the server came back: %v", ch.Err)
			}
		}
	}
	if connected != 1 {
		t.Errorf("%d connections after the server came back, want 1", connected)
	}
	if n := heraldtest.Counter(t, reg, "herald_rate_limited_total"); n != 0 {
		t.Errorf("the server answered rate_limited %v times, want 0: the client did not pace itself", n)
	}
}
