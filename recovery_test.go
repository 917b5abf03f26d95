package herald_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
)

// fastOpts lifts the per-connection rate limit so tests can publish quickly.
func fastOpts(o herald.Options) *herald.Options {
	o.Rate, o.Burst = 1e6, 1_000_000
	return &o
}

// publishConcurrently publishes n messages on channel from several
// connections at once and returns when all were acknowledged.
func publishConcurrently(t *testing.T, url, channel string, publishers, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for p := range publishers {
		c := dialWelcome(t, url)
		wg.Go(func() {
			for i := range n / publishers {
				c.send(fmt.Sprintf(`{"type":"publish","id":%d,"channel":%q,"data":"p%d-%d"}`, i+1, channel, p, i))
				c.expect("published")
			}
		})
	}
	wg.Wait()
}

// expectOffsets reads message frames and checks they carry exactly the
// offsets from, from+1, ..., to, in order.
func expectOffsets(t *testing.T, c *wsConn, channel string, from, to int) {
	t.Helper()
	for want := from; want <= to; want++ {
		m := c.expect("message")
		if m["channel"] != channel || int(m["offset"].(float64)) != want {
			t.Fatalf("got %v, want offset %d", m, want)
		}
	}
}

func subscribeSince(c *wsConn, channel, epoch string, offset int) map[string]any {
	c.send(fmt.Sprintf(`{"type":"subscribe","id":99,"channel":%q,"since":{"epoch":%q,"offset":%d}}`, channel, epoch, offset))
	return c.expect("subscribed")
}

func TestRecoveryAfterDisconnect(t *testing.T) {
	srv := startServer(t, fastOpts(herald.Options{}))
	a := dialWelcome(t, srv.url)
	a.send(`{"type":"subscribe","id":1,"channel":"room"}`)
	epoch := a.expect("subscribed")["epoch"].(string)
	publishConcurrently(t, srv.url, "room", 1, 20)
	expectOffsets(t, a, "room", 1, 20)
	a.conn.Close()

	publishConcurrently(t, srv.url, "room", 5, 500)

	b := dialWelcome(t, srv.url)
	sub := subscribeSince(b, "room", epoch, 20)
	if sub["recovered"] != true || sub["offset"] != 520.0 || sub["epoch"] != epoch {
		t.Fatalf("subscribed = %v", sub)
	}
	expectOffsets(t, b, "room", 21, 520)
	// Then the live stream, with no gap.
	publishConcurrently(t, srv.url, "room", 1, 3)
	expectOffsets(t, b, "room", 521, 523)
}

func TestRecoveryRacingPublishers(t *testing.T) {
	srv := startServer(t, fastOpts(herald.Options{}))
	a := dialWelcome(t, srv.url)
	a.send(`{"type":"subscribe","id":1,"channel":"race"}`)
	epoch := a.expect("subscribed")["epoch"].(string)
	a.conn.Close()

	publishConcurrently(t, srv.url, "race", 2, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		publishConcurrently(t, srv.url, "race", 4, 400)
	}()
	// Resubscribe while the publishers run: replay and live traffic must
	// meet with no gap and no duplicate.
	time.Sleep(10 * time.Millisecond)
	b := dialWelcome(t, srv.url)
	if sub := subscribeSince(b, "race", epoch, 0); sub["recovered"] != true {
		t.Fatalf("subscribed = %v", sub)
	}
	<-done
	expectOffsets(t, b, "race", 1, 500)
	b.send(`{"type":"ping","id":1}`)
	b.expect("pong") // nothing after 500
}

func TestUnrecoverable(t *testing.T) {
	mem := broker.NewMemory(&broker.MemoryOptions{History: broker.HistoryOptions{Size: 10}})
	defer mem.Close()
	srv := startServer(t, fastOpts(herald.Options{Broker: mem}))
	a := dialWelcome(t, srv.url)
	a.send(`{"type":"subscribe","id":1,"channel":"c"}`)
	epoch := a.expect("subscribed")["epoch"].(string)
	publishConcurrently(t, srv.url, "c", 1, 50)
	expectOffsets(t, a, "c", 1, 50)

	cases := []struct {
		name  string
		epoch string
		since int
	}{
		{"wrong epoch", "not-the-epoch", 45},
		{"too old", epoch, 5},
		{"from the future", epoch, 90},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialWelcome(t, srv.url)
			sub := subscribeSince(c, "c", tc.epoch, tc.since)
			newest := float64(50 + i) // each case publishes one live message
			if sub["recovered"] != false || sub["offset"] != newest || sub["epoch"] != epoch {
				t.Fatalf("subscribed = %v, want recovered:false at %s/%v", sub, epoch, newest)
			}
			// No replay: the next message is the next live one.
			c.send(`{"type":"publish","id":1,"channel":"c","data":"live"}`)
			m := c.next()
			if m["type"] == "published" {
				m = c.next()
			}
			if m["type"] != "message" || m["data"] != "live" {
				t.Fatalf("after recovered:false got %v, want the live message", m)
			}
		})
	}
	// Recoverable within the last ten.
	c := dialWelcome(t, srv.url)
	if sub := subscribeSince(c, "c", epoch, 53); sub["recovered"] != true {
		t.Fatalf("subscribe at the newest offset: %v", sub)
	}
}

func TestIdempotentPublish(t *testing.T) {
	srv := startServer(t, nil)
	sub := dialWelcome(t, srv.url)
	sub.send(`{"type":"subscribe","id":1,"channel":"orders"}`)
	sub.expect("subscribed")
	pub := dialWelcome(t, srv.url)
	for i := range 3 {
		pub.send(fmt.Sprintf(`{"type":"publish","id":%d,"channel":"orders","data":"once","key":"order-17"}`, i+1))
		if p := pub.expect("published"); p["offset"] != 1.0 {
			t.Fatalf("attempt %d: published = %v, want the first offset", i+1, p)
		}
	}
	// Another key is a new publication.
	pub.send(`{"type":"publish","id":9,"channel":"orders","data":"twice","key":"order-18"}`)
	pub.expect("published")
	expectOffsets(t, sub, "orders", 1, 2)
	sub.send(`{"type":"ping","id":2}`)
	sub.expect("pong")
}

func TestResubscribeRepairsAGap(t *testing.T) {
	srv := startServer(t, fastOpts(herald.Options{}))
	c := dialWelcome(t, srv.url)
	c.send(`{"type":"subscribe","id":1,"channel":"g"}`)
	epoch := c.expect("subscribed")["epoch"].(string)
	publishConcurrently(t, srv.url, "g", 1, 10)
	expectOffsets(t, c, "g", 1, 10)
	// A client that lost 6..10 (say, a bug of its own) subscribes again with
	// since 5 on the channel it still holds: it gets 6..10 once more.
	if sub := subscribeSince(c, "g", epoch, 5); sub["recovered"] != true {
		t.Fatalf("subscribed = %v", sub)
	}
	expectOffsets(t, c, "g", 6, 10)
	publishConcurrently(t, srv.url, "g", 1, 1)
	expectOffsets(t, c, "g", 11, 11)
}

// resetBroker is a memory broker through which a test can deliver a
// publication as if the stream had been started anew under the server.
type resetBroker struct {
	*broker.Memory
	deliver chan func(broker.Publication)
}

func (b *resetBroker) Run(ctx context.Context, deliver func(broker.Publication)) error {
	b.deliver <- deliver
	return b.Memory.Run(ctx, deliver)
}

func TestStreamResetClosesWith1012(t *testing.T) {
	b := &resetBroker{Memory: broker.NewMemory(nil), deliver: make(chan func(broker.Publication), 1)}
	defer b.Close()
	srv := startServer(t, &herald.Options{Broker: b})
	deliver := <-b.deliver
	c := dialWelcome(t, srv.url)
	c.send(`{"type":"subscribe","id":1,"channel":"r"}`)
	epoch := c.expect("subscribed")["epoch"].(string)
	publishConcurrently(t, srv.url, "r", 1, 3)
	expectOffsets(t, c, "r", 1, 3)

	deliver(broker.Publication{Channel: "r", Epoch: epoch + "-new", Offset: 1, Data: []byte(`"after the reset"`)})
	if code := c.expectClose(5 * time.Second); code != 1012 {
		t.Fatalf("close %d, want 1012 when the stream's epoch changes", code)
	}
}
