package herald

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/gobwas/ws"
)

// frameEvent is a frame a test client received, with when it arrived.
type frameEvent struct {
	at time.Duration
	op ws.OpCode
}

// pipeClient connects a session to an in-memory pipe inside a synctest
// bubble and records every frame the server sends. With pongAfter > 0 it
// answers each ping after that delay. The returned channel is closed when
// the server drops the connection. Tests close the server and wait for the
// drop before they return, so no goroutine outlives the bubble.
func pipeClient(t *testing.T, srv *Server, start time.Time, pongAfter time.Duration) (<-chan frameEvent, <-chan time.Duration) {
	clientEnd, sess, _ := pipeSession(srv, "pipe")
	go sess.serve()

	frames := make(chan frameEvent, 64)
	dropped := make(chan time.Duration, 1)
	go func() {
		defer clientEnd.Close()
		for {
			f, err := ws.ReadFrame(clientEnd)
			if err != nil {
				dropped <- time.Since(start)
				close(frames)
				return
			}
			select {
			case frames <- frameEvent{time.Since(start), f.Header.OpCode}:
			default: // the test stopped looking
			}
			if f.Header.OpCode == ws.OpPing && pongAfter > 0 {
				time.Sleep(pongAfter)
				ws.WriteFrame(clientEnd, ws.MaskFrame(ws.NewPongFrame(nil)))
			}
		}
	}()
	return frames, dropped
}

func TestHeartbeatTerminatesSilentPeerOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		srv := New(&Options{PingInterval: 10 * time.Second, PongTimeout: 5 * time.Second})
		defer srv.Close()
		frames, dropped := pipeClient(t, srv, start, 0)

		if f := <-frames; f.op != ws.OpText || f.at != 0 {
			t.Fatalf("first frame %v at %v, want welcome at 0", f.op, f.at)
		}
		f := <-frames
		if f.op != ws.OpPing || f.at < 5*time.Second || f.at > 10*time.Second {
			t.Fatalf("frame %v at %v, want the first ping within [5s, 10s]", f.op, f.at)
		}
		// Silent since the upgrade: dead at interval + timeout, not later.
		if at := <-dropped; at != 15*time.Second {
			t.Fatalf("silent peer dropped at %v, want 15s", at)
		}
		synctest.Wait()
		if n := srv.Connections(); n != 0 {
			t.Fatalf("%d connections left", n)
		}
	})
}

// TestHeartbeatTerminatesOffTickPeerWithinATick opens a connection between
// two ticks: its interval+timeout of silence ends between ticks too, and it
// is terminated at the tick after, not before and not later.
func TestHeartbeatTerminatesOffTickPeerWithinATick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		srv := New(&Options{PingInterval: 10 * time.Second, PongTimeout: 5 * time.Second})
		defer srv.Close()
		tick := heartbeatTick(10*time.Second, 5*time.Second)
		opened := tick + 130*time.Millisecond
		time.Sleep(opened)
		frames, dropped := pipeClient(t, srv, start, 0)
		<-frames // welcome
		if f := <-frames; f.op != ws.OpPing || f.at < opened+5*time.Second || f.at > opened+10*time.Second {
			t.Fatalf("frame %v at %v, want the first ping within [5s, 10s] of %v", f.op, f.at, opened)
		}
		dead := opened + 15*time.Second
		if at := <-dropped; at < dead || at > dead+tick {
			t.Fatalf("silent peer dropped at %v, want within [%v, %v]", at, dead, dead+tick)
		}
		synctest.Wait()
	})
}

func TestHeartbeatKeepsAnsweringPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		srv := New(&Options{PingInterval: 10 * time.Second, PongTimeout: 5 * time.Second})
		defer srv.Close()
		frames, dropped := pipeClient(t, srv, start, 4*time.Second)
		defer func() { srv.Close(); <-dropped }()

		<-frames // welcome
		var pings []time.Duration
		for len(pings) < 10 {
			f := <-frames
			if f.op == ws.OpPing {
				pings = append(pings, f.at)
			}
		}
		for i := 1; i < len(pings); i++ {
			if d := pings[i] - pings[i-1]; d != 10*time.Second {
				t.Fatalf("pings at %v: interval %v, want 10s", pings, d)
			}
		}
		if len(dropped) > 0 {
			t.Fatalf("answering peer dropped at %v", <-dropped)
		}
	})
}

func TestHeartbeatSpreadsFirstPings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		srv := New(&Options{PingInterval: 10 * time.Second, PongTimeout: 5 * time.Second})
		defer srv.Close()
		const n = 50
		var streams []<-chan frameEvent
		var drops []<-chan time.Duration
		defer func() {
			srv.Close()
			for _, d := range drops {
				<-d
			}
		}()
		for range n {
			frames, dropped := pipeClient(t, srv, start, time.Second)
			streams = append(streams, frames)
			drops = append(drops, dropped)
		}
		tick := heartbeatTick(10*time.Second, 5*time.Second)
		seen := map[time.Duration]int{}
		for _, frames := range streams {
			<-frames // welcome
			f := <-frames
			if f.op != ws.OpPing || f.at < 5*time.Second || f.at > 10*time.Second {
				t.Fatalf("first ping %v at %v, want within [5s, 10s]", f.op, f.at)
			}
			if f.at%tick != 0 {
				t.Fatalf("first ping at %v, want on a tick of %v", f.at, tick)
			}
			seen[f.at]++
		}
		// Random ticks of a 5 s window: 50 connections made together must
		// not ping together, but spread over the window's ticks (4.5 a tick
		// on average; 21 or more at one tick has odds of 1 in 20 million).
		ticks := int(5*time.Second/tick) + 1
		most := 0
		for _, k := range seen {
			most = max(most, k)
		}
		if len(seen) < ticks*7/10 || most > n*2/5 {
			t.Fatalf("%d connections pinged at %d of %d ticks, at most %d at one: %v", n, len(seen), ticks, most, seen)
		}
	})
}
