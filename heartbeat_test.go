package herald_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/heraldtest"
)

func TestHeartbeatOverRealSockets(t *testing.T) {
	srv := startServer(t, &herald.Options{PingInterval: 100 * time.Millisecond, PongTimeout: 100 * time.Millisecond})
	start := time.Now()
	alive := heraldtest.DialWelcome(t, srv.url, nil) // answers pings while it reads
	dead := heraldtest.DialWelcome(t, srv.url, nil)
	dead.IgnorePings = true
	// Over ten intervals the answering peer is kept and served, while the
	// silent one is dropped once interval+timeout passed.
	var droppedAfter time.Duration
	for time.Since(start) < time.Second {
		alive.Send(t, `{"type":"ping","id":1}`)
		alive.Expect(t, "pong")
		if droppedAfter == 0 && srv.Connections() == 1 {
			droppedAfter = time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if droppedAfter == 0 || droppedAfter < 200*time.Millisecond {
		t.Fatalf("silent peer dropped after %v, want after interval+timeout (200ms) and within 1s", droppedAfter)
	}
	dead.ExpectDropped(t, time.Second)
}

// TestHeartbeatPongsAloneKeepPeer holds a connection that sends nothing but
// the pongs to the server's pings, over real sockets: the pings a tick
// writes directly and the pongs the poller reads itself must keep it alive
// for several rounds of interval+timeout, with a ping every interval.
func TestHeartbeatPongsAloneKeepPeer(t *testing.T) {
	const interval = 100 * time.Millisecond
	srv := startServer(t, &herald.Options{PingInterval: interval, PongTimeout: interval})
	c := heraldtest.DialWelcome(t, srv.url, nil)
	start := time.Now()
	var pings []time.Duration
	for time.Since(start) < 10*interval {
		h, payload, err := c.ReadFrame(time.Second)
		if err != nil {
			t.Fatalf("after %v and %d pings: %v", time.Since(start), len(pings), err)
		}
		if h.OpCode != ws.OpPing || len(payload) != 0 {
			t.Fatalf("frame %v of %d bytes, want only empty pings", h.OpCode, len(payload))
		}
		pings = append(pings, time.Since(start))
		c.MustWriteFrame(t, ws.OpPong, true, nil)
	}
	if len(pings) < 7 {
		t.Fatalf("%d pings in %v at %v, want one every %v", len(pings), 10*interval, pings, interval)
	}
	if n := srv.Connections(); n != 1 {
		t.Fatalf("%d connections, want the answering peer kept", n)
	}
}

// TestPongsReadByThePollerKeepTheStream sends pongs to a parked connection
// alone, between the fragments of a message, and in one write with a
// request: the poller reads the lone ones itself, and everything else still
// reaches the connection's reader whole and in order.
func TestPongsReadByThePollerKeepTheStream(t *testing.T) {
	srv := startServer(t, nil)
	c := heraldtest.DialWelcome(t, srv.url, nil)
	park := func() { time.Sleep(100 * time.Millisecond) } // longer than the reader lingers
	park()
	c.MustWriteFrame(t, ws.OpPong, true, nil)
	park()
	c.MustWriteFrame(t, ws.OpText, false, []byte(`{"type":"ping",`))
	park()
	c.MustWriteFrame(t, ws.OpPong, true, []byte("abc"))
	park()
	c.MustWriteFrame(t, ws.OpContinuation, true, []byte(`"id":7}`))
	if f := c.Expect(t, "pong").Fields(); f["id"] != 7.0 {
		t.Fatalf("pong %v, want id 7", f)
	}
	park()
	var b bytes.Buffer
	ws.WriteFrame(&b, ws.MaskFrame(ws.NewPongFrame(nil)))
	ws.WriteFrame(&b, ws.MaskFrame(ws.NewTextFrame([]byte(`{"type":"ping","id":8}`))))
	if _, err := c.NetConn().Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	if f := c.Expect(t, "pong").Fields(); f["id"] != 8.0 {
		t.Fatalf("pong %v, want id 8", f)
	}
}
