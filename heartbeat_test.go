package herald_test

import (
	"testing"
	"time"

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
