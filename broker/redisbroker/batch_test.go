package redisbroker_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/broker/redisbroker"
)

// Publications that Redis sends a node one message at a time while the
// node is still delivering an earlier one reach it as one batch, in order.
func TestPublicationsArrivingDuringDeliveryComeAsOneBatch(t *testing.T) {
	const n = 30 // within a batch
	r := startRedis(t)
	prefix := "burst:"
	pub := newBroker(t, r, redisbroker.Options{Prefix: prefix})
	sub := newBroker(t, r, redisbroker.Options{Prefix: prefix})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	batches := make(chan []broker.Publication, 10)
	first := true
	go sub.RunBatches(ctx, func(ps []broker.Publication) {
		batches <- slices.Clone(ps)
		// The first delivery takes until every other publication has
		// reached the node (or the test gave up).
		for deadline := time.Now().Add(10 * time.Second); first && redisbroker.Inbox(sub) < n-len(ps) && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		first = false
	})
	if err := sub.Subscribe(ctx, "feed"); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := pub.Publish(ctx, "feed", fmt.Appendf(nil, "%d", i+1), broker.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var sizes []int
	for offset := uint64(1); offset <= n; {
		select {
		case ps := <-batches:
			sizes = append(sizes, len(ps))
			for _, p := range ps {
				if p.Offset != offset || string(p.Data) != fmt.Sprint(offset) {
					t.Fatalf("publication %d: offset %d, data %s", offset, p.Offset, p.Data)
				}
				offset++
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d publications delivered, in batches of %v", offset-1, n, sizes)
		}
	}
	if len(sizes) != 2 {
		t.Errorf("%d publications delivered in batches of %v, want the first alone or with a few and the rest in one", n, sizes)
	}
}
