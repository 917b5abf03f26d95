package herald_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// readModes are the two ways the server reads connections: parked in epoll
// between reads (the default on Linux) and a goroutine per connection (the
// portable path, also used for TLS).
var readModes = []struct {
	name string
	opts herald.Options
}{
	{"default", herald.Options{}},
	{"reader-per-connection", herald.Options{ReaderPerConnection: true}},
}

// TestReadPaths runs the reader through what a connection can send: many
// frames in one segment, a frame that arrives in pieces with pauses between,
// a fragmented message with a ping inside, and a close handshake.
func TestReadPaths(t *testing.T) {
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) {
			opts := mode.opts
			srv := startServer(t, &opts)
			sub := heraldtest.DialWelcome(t, srv.url, nil)
			sub.Send(t, `{"type":"subscribe","id":1,"channel":"room"}`)
			sub.Expect(t, "subscribed")

			// 80 publishes in one write (under the default burst of 100): the reader must handle every frame
			// that is already buffered, not only the first.
			pub := heraldtest.DialWelcome(t, srv.url, nil)
			var burst bytes.Buffer
			for i := 1; i <= 80; i++ {
				f := ws.MaskFrame(ws.NewTextFrame(fmt.Appendf(nil, `{"type":"publish","id":%d,"channel":"room","data":%d}`, i, i)))
				ws.WriteFrame(&burst, f)
			}
			pub.NetConn().SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := pub.NetConn().Write(burst.Bytes()); err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 80; i++ {
				if m := pub.Expect(t, "published").Fields(); m["id"] != float64(i) {
					t.Fatalf("reply %d: %v", i, m)
				}
				if m := sub.Expect(t, "message").Fields(); m["data"] != float64(i) {
					t.Fatalf("message %d: %v", i, m)
				}
			}

			// One frame written a few bytes at a time.
			var one bytes.Buffer
			ws.WriteFrame(&one, ws.MaskFrame(ws.NewTextFrame([]byte(`{"type":"ping","id":77}`))))
			for b := range bytes.SplitSeq(one.Bytes(), nil) {
				pub.NetConn().Write(b)
				time.Sleep(2 * time.Millisecond)
			}
			if m := pub.Expect(t, "pong").Fields(); m["id"] != 77.0 {
				t.Fatalf("pong = %v", m)
			}

			// A fragmented message with a ping between its fragments, the
			// second fragment after a pause.
			pub.MustWriteFrame(t, ws.OpText, false, []byte(`{"type":"pi`))
			pub.MustWriteFrame(t, ws.OpPing, true, []byte("mid"))
			time.Sleep(20 * time.Millisecond)
			pub.MustWriteFrame(t, ws.OpContinuation, true, []byte(`ng","id":78}`))
			h, payload, err := pub.ReadFrame(5 * time.Second)
			if err != nil || h.OpCode != ws.OpPong || string(payload) != "mid" {
				t.Fatalf("got %v %q %v, want pong mid", h.OpCode, payload, err)
			}
			if m := pub.Expect(t, "pong").Fields(); m["id"] != 78.0 {
				t.Fatalf("pong = %v", m)
			}

			pub.MustWriteFrame(t, ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"))
			if code := pub.ExpectClose(t, 5*time.Second); code != 1000 {
				t.Fatalf("echoed close code %d, want 1000", code)
			}
			pub.ExpectDropped(t, 5*time.Second)
			waitFor(t, "the publisher's connection to end", func() bool { return srv.Connections() == 1 })
		})
	}
}

// TestIdleConnectionsHoldNoGoroutine: by default an idle connection is
// parked without a goroutine; with ReaderPerConnection each has one.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	const n = 200
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) {
			opts := mode.opts
			srv := startServer(t, &opts)
			// Warm up: the first connection starts the poller, the HTTP
			// server's goroutines and the writers' first runs.
			heraldtest.DialWelcome(t, srv.url, nil).Send(t, `{"type":"ping","id":1}`)
			time.Sleep(50 * time.Millisecond)
			before := runtime.NumGoroutine()
			conns := make([]*heraldtest.Conn, n)
			for i := range conns {
				conns[i] = heraldtest.DialWelcome(t, srv.url, nil)
				conns[i].Send(t, `{"type":"subscribe","id":1,"channel":"idle"}`)
				conns[i].Expect(t, "subscribed")
			}
			var grown int
			// Goroutines that wrote the replies, served the upgrades or
			// wait a second for more from a connection that just sent
			// something end soon after; wait for the count to settle.
			for range 250 {
				grown = runtime.NumGoroutine() - before
				if grown < n/10 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("%d idle connections: %d more goroutines", n, grown)
			if opts.ReaderPerConnection {
				if grown < n {
					t.Fatalf("%d more goroutines for %d connections with a reader each", grown, n)
				}
			} else if grown >= n/10 {
				t.Fatalf("%d more goroutines for %d parked connections, want almost none", grown, n)
			}
			// Parked connections still deliver.
			conns[0].Send(t, `{"type":"publish","channel":"idle","data":"wake"}`)
			for _, c := range conns {
				if m := c.Expect(t, "message").Fields(); m["data"] != "wake" {
					t.Fatalf("got %v", m)
				}
			}
		})
	}
}

// TestParkedConnectionsAreEnded: connections that sit idle in the poller are
// still ended by the heartbeat and by a close the peer does not answer.
func TestParkedConnectionsAreEnded(t *testing.T) {
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) {
			opts := mode.opts
			opts.PingInterval, opts.PongTimeout = 200*time.Millisecond, 200*time.Millisecond
			srv := startServer(t, &opts)
			silent := heraldtest.DialWelcome(t, srv.url, nil) // never answers pings
			silent.ExpectDropped(t, 3*time.Second)
			waitFor(t, "the silent connection to end", func() bool { return srv.Connections() == 0 })

			// A 1001 close that the client never answers: the server gives
			// up after the write timeout plus a second.
			opts = mode.opts
			opts.WriteTimeout = 300 * time.Millisecond
			srv = startServer(t, &opts)
			deaf := heraldtest.DialWelcome(t, srv.url, nil)
			live := heraldtest.DialWelcome(t, srv.url, nil)
			waitFor(t, "two connections", func() bool { return srv.Connections() == 2 })
			done := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				done <- srv.Shutdown(ctx)
			}()
			if code := deaf.ExpectClose(t, 3*time.Second); code != 1001 {
				t.Fatalf("close code %d, want 1001", code)
			}
			live.ExpectClose(t, 3*time.Second)
			live.MustWriteFrame(t, ws.OpClose, true, ws.NewCloseFrameBody(1001, ""))
			start := time.Now()
			deaf.ExpectDropped(t, 5*time.Second)
			if err := <-done; err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			t.Logf("unanswered close ended after %v", time.Since(start).Round(time.Millisecond))
			if srv.Connections() != 0 {
				t.Fatalf("%d connections left", srv.Connections())
			}
		})
	}
}
