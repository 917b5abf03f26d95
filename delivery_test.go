package herald_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
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
