package herald_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// fastOpts lifts the per-connection rate limit so tests can publish quickly.
func fastOpts(o herald.Options) *herald.Options {
	o.Rate, o.Burst = 1e6, 1_000_000
	o.PublishBytesRate = 1 << 30
	return &o
}

// publishConcurrently publishes n messages on channel from several
// connections at once and returns when all were acknowledged.
func publishConcurrently(t *testing.T, url, channel string, publishers, n int) {
	t.Helper()
	publishFrom(t, dialPublishers(t, url, publishers), channel, n)
	if t.Failed() {
		t.FailNow()
	}
}

// dialPublishers dials n connections to publish from.
func dialPublishers(t *testing.T, url string, n int) []*heraldtest.Conn {
	t.Helper()
	conns := make([]*heraldtest.Conn, n)
	for i := range conns {
		conns[i] = heraldtest.DialWelcome(t, url, nil)
	}
	return conns
}

// publishFrom publishes n messages on channel from all conns at once and
// returns when every publisher has its messages acknowledged or has stopped
// at its first failure. It reports failures with t.Errorf, so it may run in
// any goroutine.
func publishFrom(t *testing.T, conns []*heraldtest.Conn, channel string, n int) {
	var wg sync.WaitGroup
	for p, c := range conns {
		wg.Go(func() {
			for i := range n / len(conns) {
				err := c.SendText(fmt.Sprintf(`{"type":"publish","id":%d,"channel":%q,"data":"p%d-%d"}`, i+1, channel, p, i))
				var f heraldtest.Frame
				if err == nil {
					f, err = c.Next(heraldtest.Timeout)
				}
				if err != nil || f.Type != "published" {
					t.Errorf("publisher %d, message %d: got %s %v, want published", p, i+1, f, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// expectOffsets reads message frames and checks they carry exactly the
// offsets from, from+1, ..., to, in order.
func expectOffsets(t *testing.T, c *heraldtest.Conn, channel string, from, to int) {
	t.Helper()
	for want := from; want <= to; want++ {
		m := c.Expect(t, "message").Fields()
		if m["channel"] != channel || int(m["offset"].(float64)) != want {
			t.Fatalf("got %v, want offset %d", m, want)
		}
	}
}

// subscribeSince subscribes c to channel since epoch and offset and returns
// the fields of the reply.
func subscribeSince(t *testing.T, c *heraldtest.Conn, channel, epoch string, offset int) map[string]any {
	t.Helper()
	return c.Subscribe(t, 99, channel, &heraldtest.Frame{Epoch: epoch, Offset: uint64(offset)}).Fields()
}

func TestRecoveryAfterDisconnect(t *testing.T) {
	srv := startServer(t, fastOpts(herald.Options{}))
	a := heraldtest.DialWelcome(t, srv.url, nil)
	a.Send(t, `{"type":"subscribe","id":1,"channel":"room"}`)
	epoch := a.Expect(t, "subscribed").Fields()["epoch"].(string)
	publishConcurrently(t, srv.url, "room", 1, 20)
	expectOffsets(t, a, "room", 1, 20)
	a.Close()

	publishConcurrently(t, srv.url, "room", 5, 500)

	b := heraldtest.DialWelcome(t, srv.url, nil)
	sub := subscribeSince(t, b, "room", epoch, 20)
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
	a := heraldtest.DialWelcome(t, srv.url, nil)
	a.Send(t, `{"type":"subscribe","id":1,"channel":"race"}`)
	epoch := a.Expect(t, "subscribed").Fields()["epoch"].(string)
	a.Close()

	publishConcurrently(t, srv.url, "race", 2, 100)
	racers := dialPublishers(t, srv.url, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		publishFrom(t, racers, "race", 400)
	}()
	// Resubscribe while the publishers run: replay and live traffic must
	// meet with no gap and no duplicate.
	time.Sleep(10 * time.Millisecond)
	b := heraldtest.DialWelcome(t, srv.url, nil)
	if sub := subscribeSince(t, b, "race", epoch, 0); sub["recovered"] != true {
		t.Fatalf("subscribed = %v", sub)
	}
	<-done
	expectOffsets(t, b, "race", 1, 500)
	b.Send(t, `{"type":"ping","id":1}`)
	b.Expect(t, "pong") // nothing after 500
}

func TestUnrecoverable(t *testing.T) {
	mem := broker.NewMemory(&broker.MemoryOptions{History: broker.HistoryOptions{Size: 10}})
	defer mem.Close()
	srv := startServer(t, fastOpts(herald.Options{Broker: mem}))
	a := heraldtest.DialWelcome(t, srv.url, nil)
	a.Send(t, `{"type":"subscribe","id":1,"channel":"c"}`)
	epoch := a.Expect(t, "subscribed").Fields()["epoch"].(string)
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
			c := heraldtest.DialWelcome(t, srv.url, nil)
			sub := subscribeSince(t, c, "c", tc.epoch, tc.since)
			newest := float64(50 + i) // each case publishes one live message
			if sub["recovered"] != false || sub["offset"] != newest || sub["epoch"] != epoch {
				t.Fatalf("subscribed = %v, want recovered:false at %s/%v", sub, epoch, newest)
			}
			// No replay: the next message is the next live one.
			c.Send(t, `{"type":"publish","id":1,"channel":"c","data":"live"}`)
			f, err := c.Next(heraldtest.Timeout)
			if err == nil && f.Type == "published" {
				f, err = c.Next(heraldtest.Timeout)
			}
			if m := f.Fields(); err != nil || m["type"] != "message" || m["data"] != "live" {
				t.Fatalf("after recovered:false got %s %v, want the live message", f, err)
			}
		})
	}
	// Recoverable within the last ten.
	c := heraldtest.DialWelcome(t, srv.url, nil)
	if sub := subscribeSince(t, c, "c", epoch, 53); sub["recovered"] != true {
		t.Fatalf("subscribe at the newest offset: %v", sub)
	}
}

func TestIdempotentPublish(t *testing.T) {
	srv := startServer(t, nil)
	sub := heraldtest.DialWelcome(t, srv.url, nil)
	sub.Send(t, `{"type":"subscribe","id":1,"channel":"orders"}`)
	sub.Expect(t, "subscribed")
	pub := heraldtest.DialWelcome(t, srv.url, nil)
	for i := range 3 {
		pub.Send(t, fmt.Sprintf(`{"type":"publish","id":%d,"channel":"orders","data":"once","key":"order-17"}`, i+1))
		if p := pub.Expect(t, "published").Fields(); p["offset"] != 1.0 {
			t.Fatalf("attempt %d: published = %v, want the first offset", i+1, p)
		}
	}
	// Another key is a new publication.
	pub.Send(t, `{"type":"publish","id":9,"channel":"orders","data":"twice","key":"order-18"}`)
	pub.Expect(t, "published")
	expectOffsets(t, sub, "orders", 1, 2)
	sub.Send(t, `{"type":"ping","id":2}`)
	sub.Expect(t, "pong")
}

// Idempotency keys are scoped by publisher: a key another publisher used
// first (an anonymous client, another user) does not swallow the backend's
// or a user's publish; the same publisher retrying still gets the first
// offset.
func TestIdempotencyKeysPerPublisher(t *testing.T) {
	srv := startAPIServer(t, herald.Options{APIKey: "k", Tokens: mustJWT(t), Anonymous: herald.AnonymousAllow})
	publish := func(c *heraldtest.Conn, id int) float64 {
		t.Helper()
		c.Send(t, fmt.Sprintf(`{"type":"publish","id":%d,"channel":"orders","data":%d,"key":"order-42"}`, id, id))
		return c.Expect(t, "published").Fields()["offset"].(float64)
	}
	anon := heraldtest.DialWelcome(t, srv.url, nil)
	if off := publish(anon, 1); off != 1 {
		t.Fatalf("anonymous publish got offset %v, want 1", off)
	}
	apiPublish := func() float64 {
		t.Helper()
		status, body := call(t, "POST", srv.api+"/api/publish", "k", `{"channel":"orders","data":"backend","key":"order-42"}`)
		if status != 200 {
			t.Fatalf("API publish: %d %v", status, body)
		}
		return body["offset"].(float64)
	}
	if off := apiPublish(); off != 2 {
		t.Fatalf("API publish with a key an anonymous client used got offset %v, want a new publication (2)", off)
	}
	if off := apiPublish(); off != 2 {
		t.Fatalf("API retry got offset %v, want its first (2)", off)
	}
	alice := heraldtest.DialWelcome(t, srv.url, bearer(token(t, jwt.MapClaims{"sub": "alice", "aud": "herald"})))
	bob := heraldtest.DialWelcome(t, srv.url, bearer(token(t, jwt.MapClaims{"sub": "bob", "aud": "herald"})))
	if a, b := publish(alice, 3), publish(bob, 4); a != 3 || b != 4 {
		t.Fatalf("alice and bob got offsets %v and %v, want 3 and 4", a, b)
	}
	alice2 := heraldtest.DialWelcome(t, srv.url, bearer(token(t, jwt.MapClaims{"sub": "alice", "aud": "herald"})))
	if a := publish(alice2, 5); a != 3 {
		t.Fatalf("alice retrying on another connection got offset %v, want her first (3)", a)
	}
	if off := publish(heraldtest.DialWelcome(t, srv.url, nil), 6); off != 1 {
		t.Fatalf("anonymous clients share one scope: got offset %v, want 1", off)
	}
}

func TestResubscribeRepairsAGap(t *testing.T) {
	srv := startServer(t, fastOpts(herald.Options{}))
	c := heraldtest.DialWelcome(t, srv.url, nil)
	c.Send(t, `{"type":"subscribe","id":1,"channel":"g"}`)
	epoch := c.Expect(t, "subscribed").Fields()["epoch"].(string)
	publishConcurrently(t, srv.url, "g", 1, 10)
	expectOffsets(t, c, "g", 1, 10)
	// A client that lost 6..10 (say, a bug of its own) subscribes again with
	// since 5 on the channel it still holds: it gets 6..10 once more.
	if sub := subscribeSince(t, c, "g", epoch, 5); sub["recovered"] != true {
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
	c := heraldtest.DialWelcome(t, srv.url, nil)
	c.Send(t, `{"type":"subscribe","id":1,"channel":"r"}`)
	epoch := c.Expect(t, "subscribed").Fields()["epoch"].(string)
	publishConcurrently(t, srv.url, "r", 1, 3)
	expectOffsets(t, c, "r", 1, 3)

	deliver(broker.Publication{Channel: "r", Epoch: epoch + "-new", Offset: 1, Data: []byte(`"after the reset"`)})
	if code := c.ExpectClose(t, 5*time.Second); code != 1012 {
		t.Fatalf("close %d, want 1012 when the stream's epoch changes", code)
	}
}
