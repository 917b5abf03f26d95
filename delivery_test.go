package herald_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/internal/heraldtest"
)

func TestSlowConsumerClosed4008WhileFastOnesMissNothing(t *testing.T) {
	// The write timeout outlasts the test, so the slow client is closed for
	// its queue, not for a stalled write. Fast clients may lag by the queue
	// and their socket buffers without being mistaken for slow.
	srv := startServer(t, &herald.Options{SendQueueBytes: 256 << 10, WriteTimeout: time.Minute, Rate: 1e6, Burst: 1e6, PublishBytesRate: 1 << 30})
	slow := heraldtest.DialWelcome(t, srv.url, nil)
	slow.Send(t, `{"type":"subscribe","id":1,"channel":"feed"}`)
	slow.Expect(t, "subscribed")

	const fastN, total = 3, 4000
	fast := make([]*heraldtest.Conn, fastN)
	for i := range fast {
		fast[i] = heraldtest.DialWelcome(t, srv.url, nil)
		fast[i].Send(t, `{"type":"subscribe","id":1,"channel":"feed"}`)
		fast[i].Expect(t, "subscribed")
	}
	// Fast subscribers read everything while a publisher floods the channel
	// with ~8 MB, well over the slow client's queue and socket buffers; the
	// slow one reads nothing until the end.
	var wg sync.WaitGroup
	errs := make(chan error, fastN)
	for _, c := range fast {
		wg.Go(func() {
			for want := 1.0; want <= total; want++ {
				h, payload, err := c.ReadFrame(20 * time.Second)
				if err != nil {
					errs <- err
					return
				}
				if h.OpCode != 1 {
					want--
					continue
				}
				if !strings.Contains(string(payload), fmt.Sprintf(`"offset":%d,`, int(want))) {
					errs <- fmt.Errorf("got %.80s, want offset %d", payload, int(want))
					return
				}
			}
		})
	}
	pub := heraldtest.DialWelcome(t, srv.url, nil)
	data := `"` + strings.Repeat("x", 2000) + `"`
	for i := range total {
		pub.Send(t, fmt.Sprintf(`{"type":"publish","id":%d,"channel":"feed","data":%s}`, i+1, data))
		pub.Expect(t, "published")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if code := slow.ExpectClose(t, 30*time.Second); code != 4008 {
		t.Fatalf("slow consumer closed with %d, want 4008", code)
	}
}

func TestThousandConnectionsLeaveNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	srv := startServer(t, &herald.Options{PingInterval: time.Second})
	conns := make([]*heraldtest.Conn, 0, 1000)
	for range 1000 {
		c := heraldtest.DialWelcome(t, srv.url, nil)
		c.Send(t, `{"type":"subscribe","id":1,"channel":"all"}`)
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Expect(t, "subscribed")
	}
	waitFor(t, "1000 connections", func() bool { return srv.Connections() == 1000 })
	for i, c := range conns {
		if i%2 == 0 {
			c.Close() // abrupt
		} else {
			c.MustWriteFrame(t, 8, true, []byte{0x03, 0xe8}) // close handshake
		}
	}
	waitFor(t, "all connections to end", func() bool { return srv.Connections() == 0 })
	// Server-side goroutines are gone (the test's own HTTP server and the
	// server's two loops remain until cleanup; goleak checks those at exit).
	waitFor(t, "goroutines to return to baseline", func() bool {
		return runtime.NumGoroutine() <= before+10
	})
}

// burstBroker is a memory broker whose deliveries the test makes: Deliver
// hands the server a batch, as the Redis broker hands it what arrived.
type burstBroker struct {
	*broker.Memory
	run chan func([]broker.Publication)
}

func (b *burstBroker) RunBatches(ctx context.Context, deliver func([]broker.Publication)) error {
	b.run <- deliver
	<-ctx.Done()
	return ctx.Err()
}

// A batch of publications from the broker reaches each subscriber in one
// socket write: its writer starts once the whole batch is queued, not at
// the first publication, when it would write the first ones on its own
// while the rest are being queued.
func TestBatchFromBrokerReachesEachConnectionInOneWrite(t *testing.T) {
	b := &burstBroker{Memory: broker.NewMemory(nil), run: make(chan func([]broker.Publication), 1)}
	t.Cleanup(func() { b.Close() })
	reg := prometheus.NewRegistry()
	srv := startServer(t, &herald.Options{Broker: b, Registry: reg})
	deliver := <-b.run
	const conns, n = 10, 300
	cs := make([]*heraldtest.Conn, conns)
	for i := range cs {
		cs[i] = heraldtest.DialWelcome(t, srv.url, nil)
		cs[i].Subscribe(t, 1, "feed", nil)
	}
	pos, err := b.Position(context.Background(), "feed")
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]broker.Publication, n)
	for i := range batch {
		batch[i] = broker.Publication{Channel: "feed", Epoch: pos.Epoch, Offset: uint64(i + 1), Data: []byte(`"` + strings.Repeat("x", 100) + `"`)}
	}
	// Each connection has had two writes, its welcome and its subscribed,
	// once the server counted them (after the client read them).
	for deadline := time.Now().Add(5 * time.Second); heraldtest.Counter(t, reg, "herald_socket_writes_total") < 2*conns; {
		if time.Now().After(deadline) {
			t.Fatalf("%v writes, want %d", heraldtest.Counter(t, reg, "herald_socket_writes_total"), 2*conns)
		}
		time.Sleep(time.Millisecond)
	}
	before := heraldtest.Counter(t, reg, "herald_socket_writes_total")
	deliver(batch)
	for _, c := range cs {
		for i := range n {
			if f := c.Expect(t, "message"); f.Fields()["offset"] != float64(i+1) {
				t.Fatalf("message %d: %s", i+1, f)
			}
		}
	}
	if writes := heraldtest.Counter(t, reg, "herald_socket_writes_total") - before; writes != conns {
		t.Errorf("a batch of %d publications to %d subscribers took %v socket writes, want one each", n, conns, writes)
	}
}
