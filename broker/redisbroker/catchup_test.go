package redisbroker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/broker/redisbroker"
)

// TestMissedWhileDisconnectedAreDelivered: publications made while a
// node's pub/sub connection was down reach it once the connection is back,
// from history, in order and once, without waiting for the channel's next
// publication.
func TestMissedWhileDisconnectedAreDelivered(t *testing.T) {
	r := startRedis(t)
	pub := newBroker(t, r, redisbroker.Options{Prefix: "gap:"})
	sub := newBroker(t, r, redisbroker.Options{Prefix: "gap:"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan broker.Publication, 16)
	go sub.Run(ctx, func(p broker.Publication) { got <- p })
	if err := sub.Subscribe(ctx, "quiet"); err != nil {
		t.Fatal(err)
	}
	publish := func(n int) {
		t.Helper()
		if _, err := pub.Publish(ctx, "quiet", fmt.Appendf(nil, "%d", n), broker.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	next := func() broker.Publication {
		t.Helper()
		select {
		case p := <-got:
			return p
		case <-time.After(10 * time.Second):
			t.Fatal("a publication made while the pub/sub connection was down was not delivered")
			return broker.Publication{}
		}
	}
	publish(1)
	if p := next(); p.Offset != 1 {
		t.Fatalf("delivered offset %d, want 1", p.Offset)
	}
	// The node reconnects after a backoff of at least 25 ms; both
	// publishes take a round trip each.
	r.Do("CLIENT", "KILL", "TYPE", "pubsub")
	publish(2)
	publish(3)
	for want := uint64(2); want <= 3; want++ {
		if p := next(); p.Offset != want || string(p.Data) != fmt.Sprint(want) {
			t.Fatalf("delivered offset %d (%s), want %d", p.Offset, p.Data, want)
		}
	}
	select {
	case p := <-got:
		t.Fatalf("delivered offset %d again", p.Offset)
	case <-time.After(200 * time.Millisecond):
	}
}
