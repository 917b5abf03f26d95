package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/protocol"
)

const ms = time.Millisecond

// within fails unless lo <= d <= hi.
func within(t *testing.T, what string, d, lo, hi time.Duration) {
	t.Helper()
	if d < lo || d > hi {
		t.Errorf("%s = %v, want within [%v, %v]", what, d, lo, hi)
	}
}

// TestBackoffGrowsUntilHealthy drops connections after 5 s (less than the
// 10 s that count as healthy) and then once after 11 s: the waits before
// reconnecting double each time, and only the healthy connection resets them.
func TestBackoffGrowsUntilHealthy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var drops []time.Time
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
			up := 5 * time.Second
			if n == 5 {
				up = 11 * time.Second
			}
			if n == 6 {
				return // stays until the client closes
			}
			time.Sleep(up)
			mu.Lock()
			drops = append(drops, time.Now())
			mu.Unlock()
			s.drop()
		}}
		c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(nil))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		c.Close()

		dials := f.dialTimes()
		if len(dials) != 7 {
			t.Fatalf("%d dials, want 7", len(dials))
		}
		want := [][2]time.Duration{
			{250 * ms, 500 * ms}, {500 * ms, 1000 * ms}, {1 * time.Second, 2 * time.Second},
			{2 * time.Second, 4 * time.Second}, {4 * time.Second, 8 * time.Second},
			{250 * ms, 500 * ms}, // after the healthy connection
		}
		for i, w := range want {
			within(t, fmt.Sprintf("wait before dial %d", i+1), dials[i+1].Sub(drops[i]), w[0], w[1])
		}
	})
}

// TestFirstRetryIsSpread drops 200 clients at the same instant: none retries
// at once, and their first retries are spread over [250ms, 500ms].
func TestFirstRetryIsSpread(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const clients = 200
		dropAt := make(chan time.Time, clients)
		servers := make([]*fakeServer, clients)
		var cs []*client.Client
		for i := range servers {
			servers[i] = &fakeServer{t: t, script: func(n int, s *fakeSession) {
				if n == 0 {
					time.Sleep(time.Second)
					dropAt <- time.Now()
					s.drop()
				}
			}}
			c, err := client.Dial(t.Context(), "ws://herald.test/ws", servers[i].options(nil))
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
		}
		time.Sleep(5 * time.Second)
		for _, c := range cs {
			c.Close()
		}
		drop := <-dropAt
		waits := map[time.Duration]bool{}
		for _, f := range servers {
			d := f.dialTimes()
			if len(d) != 2 {
				t.Fatalf("%d dials, want 2", len(d))
			}
			wait := d[1].Sub(drop)
			within(t, "first retry", wait, 250*ms, 500*ms)
			waits[wait] = true
		}
		if len(waits) < clients*9/10 {
			t.Errorf("only %d distinct first-retry delays among %d clients", len(waits), clients)
		}
	})
}

// TestJitterAtCapWhileRetrying lets a client retry a refusing server for
// over an hour: the waits at the cap stay spread over [15s, 30s].
func TestJitterAtCapWhileRetrying(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeServer{t: t,
			refuse: func(n int) bool { return n > 0 && n < 200 },
			script: func(n int, s *fakeSession) {
				if n == 0 {
					s.drop()
				}
			}}
		c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(nil))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Hour)
		c.Close()
		dials := f.dialTimes()
		if len(dials) != 201 {
			t.Fatalf("%d dials, want 201", len(dials))
		}
		var low, high int
		for i := 10; i < 200; i++ { // attempt i-1 >= 6 is at the cap
			wait := dials[i+1].Sub(dials[i])
			within(t, fmt.Sprintf("wait before dial %d", i+1), wait, 15*time.Second, 30*time.Second)
			if wait < 20*time.Second {
				low++
			}
			if wait > 25*time.Second {
				high++
			}
		}
		if low < 40 || high < 40 {
			t.Errorf("waits at the cap not spread: %d below 20s, %d above 25s of 190", low, high)
		}
	})
}

// TestGoingAwaySpreadsReturns closes 200 clients with 1001 at once: their
// first attempts are spread over [100ms, 5s].
func TestGoingAwaySpreadsReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const clients = 200
		var servers []*fakeServer
		var cs []*client.Client
		start := time.Now()
		for range clients {
			f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
				if n == 0 {
					time.Sleep(time.Minute - time.Since(start)) // together
					s.closeWith(protocol.CloseGoingAway)
				}
			}}
			c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(nil))
			if err != nil {
				t.Fatal(err)
			}
			servers, cs = append(servers, f), append(cs, c)
		}
		time.Sleep(2 * time.Minute)
		for _, c := range cs {
			c.Close()
		}
		var perSecond [5]int
		for _, f := range servers {
			d := f.dialTimes()
			if len(d) != 2 {
				t.Fatalf("%d dials, want 2", len(d))
			}
			wait := d[1].Sub(start.Add(time.Minute))
			within(t, "wait after 1001", wait, 100*ms, 5*time.Second)
			perSecond[min(int(wait/time.Second), 4)]++
		}
		for i, n := range perSecond {
			if n < clients/5/2 || n > clients/5*2 {
				t.Errorf("second %d after 1001 holds %d of %d returns: %v", i, n, clients, perSecond)
			}
		}
	})
}

// TestTerminalCloseStops checks that 4403, 4500-4999 and 4001 without a
// token callback stop the client, are reported, and are never retried.
func TestTerminalCloseStops(t *testing.T) {
	for _, code := range []protocol.CloseCode{4403, 4500, 4999, 4001} {
		t.Run(fmt.Sprint(int(code)), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
					time.Sleep(time.Second)
					s.closeWith(code)
				}}
				var mu sync.Mutex
				var events []client.StateChange
				c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(&client.Options{
					Token: "static",
					OnStateChange: func(ch client.StateChange) {
						mu.Lock()
						events = append(events, ch)
						mu.Unlock()
					},
				}))
				if err != nil {
					t.Fatal(err)
				}
				<-c.Done()
				time.Sleep(10 * time.Minute)
				synctest.Wait()
				var ce *client.CloseError
				if !errors.As(c.Err(), &ce) || ce.Code != code {
					t.Errorf("Err() = %v, want a CloseError with %d", c.Err(), code)
				}
				if n := len(f.dialTimes()); n != 1 {
					mu.Lock()
					t.Errorf("%d dials, want 1; state changes: %+v", n, events)
					mu.Unlock()
				}
				_, err = c.Publish(t.Context(), "chat", "hi")
				if !errors.Is(err, client.ErrClosed) || !errors.As(err, &ce) {
					t.Errorf("Publish after stop: %v, want ErrClosed wrapping the CloseError", err)
				}
				c.Close()
				mu.Lock()
				defer mu.Unlock()
				last := events[len(events)-1]
				if last.State != client.StateClosed || !errors.As(last.Err, &ce) {
					t.Errorf("last state change %+v, want closed with the close error", last)
				}
			})
		})
	}
}

// TestTokenRefreshOn4001 checks that a 4001 makes the client ask for a new
// token before reconnecting, and that it never sends a rejected token again.
func TestTokenRefreshOn4001(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
			if n == 0 {
				time.Sleep(time.Second)
				s.closeWith(protocol.CloseUnauthorized)
			}
		}}
		var mu sync.Mutex
		answers := []string{"old", "old", "new"}
		calls := 0
		c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(&client.Options{
			TokenFunc: func(ctx context.Context) (string, error) {
				mu.Lock()
				defer mu.Unlock()
				tok := answers[min(calls, len(answers)-1)]
				calls++
				return tok, nil
			},
		}))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		c.Close()
		got := f.upgradeTokens()
		if fmt.Sprint(got) != "[Bearer old Bearer new]" {
			t.Errorf("upgrades carried %q, want [Bearer old Bearer new]", got)
		}
		mu.Lock()
		defer mu.Unlock()
		if calls != 3 {
			t.Errorf("token callback called %d times, want 3 (first, rejected again, new)", calls)
		}
	})
}

// TestLivenessDropsSilentServer checks the client's own heartbeat: after
// ping_interval of silence it pings, and when nothing arrives within
// pong_timeout it drops the connection and reconnects.
func TestLivenessDropsSilentServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sessions := make(chan *fakeSession, 2)
		f := &fakeServer{t: t, interval: time.Second, timeout: 500 * ms,
			script: func(n int, s *fakeSession) {
				if n == 0 {
					s.setSilent(true)
				}
				sessions <- s
			}}
		start := time.Now()
		c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(nil))
		if err != nil {
			t.Fatal(err)
		}
		first := <-sessions
		<-first.gone
		within(t, "time to drop a silent server", time.Since(start), 1500*ms, 1600*ms)
		pings := first.frames()
		if len(pings) != 1 || pings[0].Type() != protocol.TypePing {
			t.Errorf("client sent %v to the silent server, want one ping", pings)
		}
		second := <-sessions
		time.Sleep(time.Minute) // this one answers: the connection lasts
		synctest.Wait()
		select {
		case <-second.gone:
			t.Errorf("client dropped a server that answers its pings")
		default:
		}
		if n := len(f.dialTimes()); n != 2 {
			t.Errorf("%d dials, want 2", n)
		}
		c.Close()
	})
}
