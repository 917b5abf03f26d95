package client_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/protocol"
)

// recorder collects what a subscription hands to the application.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.events = append(r.events, s)
	r.mu.Unlock()
}

func (r *recorder) handler(m client.Message) { r.add(fmt.Sprint(m.Offset)) }

func (r *recorder) recovery(rc client.Recovery) {
	r.add(fmt.Sprintf("recovered=%v since=%s/%d at=%s/%d", rc.Recovered,
		rc.Since.Epoch, rc.Since.Offset, rc.Position.Epoch, rc.Position.Offset))
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprint(r.events)
}

func message(offset uint64) *protocol.Message {
	return &protocol.Message{Channel: "chat", Offset: offset, Data: json.RawMessage(`{}`)}
}

// TestGapResubscribesAndDuplicatesDrop sends offsets 1, 2, 2, 4: the client
// drops the repeated 2 and answers the gap with a subscribe since 2; the
// server's replay of 3 and 4 reaches the handler in order, once.
func TestGapResubscribesAndDuplicatesDrop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
			s.setSilent(true)
			sub := s.next(t, protocol.TypeSubscribe).(*protocol.Subscribe)
			s.send(&protocol.Subscribed{ID: sub.ID, Channel: "chat", Epoch: "e1"})
			for _, off := range []uint64{1, 2, 2, 4, 5} {
				s.send(message(off))
			}
			again := s.next(t, protocol.TypeSubscribe).(*protocol.Subscribe)
			if again.Since == nil || *again.Since != (protocol.StreamPosition{Epoch: "e1", Offset: 2}) {
				t.Errorf("resubscribe after the gap asked since %+v, want e1/2", again.Since)
			}
			yes := true
			s.send(&protocol.Subscribed{ID: again.ID, Channel: "chat", Epoch: "e1", Offset: 5, Recovered: &yes})
			for _, off := range []uint64{3, 4, 5, 6} {
				s.send(message(off))
			}
		}}
		c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(nil))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sub, err := c.Subscribe(t.Context(), "chat", rec.handler, client.OnRecovery(rec.recovery))
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got, want := rec.String(), "[1 2 recovered=true since=e1/2 at=e1/5 3 4 5 6]"; got != want {
			t.Errorf("handler saw %s, want %s", got, want)
		}
		if pos := sub.Position(); pos != (protocol.StreamPosition{Epoch: "e1", Offset: 6}) {
			t.Errorf("Position() = %+v, want e1/6", pos)
		}
	})
}

// TestUnrecoverableReported reconnects to a server whose stream restarted
// under a new epoch: the subscription's recovery callback says
// recovered=false before the first message of the new stream.
func TestUnrecoverableReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
			s.setSilent(true)
			sub := s.next(t, protocol.TypeSubscribe).(*protocol.Subscribe)
			if n == 0 {
				s.send(&protocol.Subscribed{ID: sub.ID, Channel: "chat", Epoch: "e1"})
				s.send(message(1))
				s.send(message(2))
				s.drop()
				return
			}
			if sub.Since == nil || *sub.Since != (protocol.StreamPosition{Epoch: "e1", Offset: 2}) {
				t.Errorf("resubscribe asked since %+v, want e1/2", sub.Since)
			}
			no := false
			s.send(&protocol.Subscribed{ID: sub.ID, Channel: "chat", Epoch: "e2", Offset: 7, Recovered: &no})
			s.send(message(8))
		}}
		c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(nil))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Subscribe(t.Context(), "chat", rec.handler, client.OnRecovery(rec.recovery)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // the reconnect
		synctest.Wait()
		if got, want := rec.String(), "[1 2 recovered=false since=e1/2 at=e2/7 8]"; got != want {
			t.Errorf("handler saw %s, want %s", got, want)
		}
	})
}

// TestResubscribeRefusedEndsSubscription: after a reconnect the server
// refuses the channel (forbidden): the subscription ends, and OnError says
// why; a retryable refusal (unavailable) would instead be retried.
func TestResubscribeRefusedEndsSubscription(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
			s.setSilent(true)
			sub := s.next(t, protocol.TypeSubscribe).(*protocol.Subscribe)
			switch n {
			case 0:
				s.send(&protocol.Subscribed{ID: sub.ID, Channel: "chat", Epoch: "e1"})
				s.drop()
			case 1:
				s.send(&protocol.Error{ID: sub.ID, Code: protocol.CodeUnavailable, Message: "broker down"})
			default:
				s.send(&protocol.Error{ID: sub.ID, Code: protocol.CodeForbidden, Message: "no"})
			}
		}}
		c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(nil))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		errs := make(chan error, 1)
		sub, err := c.Subscribe(t.Context(), "chat", func(client.Message) {},
			client.OnError(func(err error) { errs <- err }))
		if err != nil {
			t.Fatal(err)
		}
		<-sub.Done()
		// Counted before anything blocks: once every goroutine waits, the
		// bubble's clock jumps to the silent server's liveness timeout and
		// the client dials again, as it should.
		if n := len(f.dialTimes()); n != 3 {
			t.Errorf("%d dials, want 3 (unavailable is retried, forbidden is not)", n)
		}
		var pe *protocol.Error
		if err := <-errs; !asProtocolError(err, &pe) || pe.Code != protocol.CodeForbidden {
			t.Errorf("OnError got %v, want forbidden", err)
		}
	})
}

func asProtocolError(err error, pe **protocol.Error) bool { return errors.As(err, pe) }

// TestSlowHandlerBounded: a handler that stops while ten messages arrive
// holds at most HandlerQueue of them waiting; the client lets the rest go,
// and once the handler has caught up it asks for a replay from the last one
// it took, so the handler still sees every message once, in order.
func TestSlowHandlerBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit = 4
		var rec recorder
		release := make(chan struct{})
		var released atomic.Bool
		since := make(chan uint64, 1)
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
			s.setSilent(true)
			sub := s.next(t, protocol.TypeSubscribe).(*protocol.Subscribe)
			s.send(&protocol.Subscribed{ID: sub.ID, Channel: "chat", Epoch: "e1"})
			for off := uint64(1); off <= 10; off++ {
				s.send(message(off))
			}
			// The handler may fall behind the replay too (it holds at most
			// limit waiting), so every resubscribe is answered.
			for first := true; ; first = false {
				again, ok := s.nextOrGone(protocol.TypeSubscribe)
				if !ok {
					return
				}
				req := again.(*protocol.Subscribe)
				if !released.Load() {
					t.Errorf("resubscribed while the handler was still stopped")
				}
				if req.Since == nil || req.Since.Epoch != "e1" {
					t.Errorf("resubscribe asked since %+v, want e1/...", req.Since)
					return
				}
				if first {
					since <- req.Since.Offset
				}
				yes := true
				s.send(&protocol.Subscribed{ID: req.ID, Channel: "chat", Epoch: "e1", Offset: 10, Recovered: &yes})
				for off := req.Since.Offset + 1; off <= 10; off++ {
					s.send(message(off))
				}
			}
		}}
		c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(&client.Options{HandlerQueue: limit}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		handler := func(m client.Message) {
			rec.handler(m)
			if m.Offset == 1 {
				<-release
			}
		}
		if _, err := c.Subscribe(t.Context(), "chat", handler, client.OnRecovery(rec.recovery)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := rec.String(); got != "[1]" {
			t.Fatalf("while stopped, the handler saw %s, want [1]", got)
		}
		released.Store(true)
		close(release)
		synctest.Wait()
		var k uint64
		select {
		case k = <-since:
		case <-time.After(time.Minute):
			t.Fatal("no replay asked for after the handler caught up")
		}
		synctest.Wait() // the replays the server sends after the since it was asked
		if k < 2 || k > 1+limit {
			t.Errorf("replay asked from %d: the client took more than 1 running + %d waiting", k, limit)
		}
		// Every offset once, in order, and the first replay from k.
		var offsets []string
		for _, item := range strings.Fields(strings.Trim(rec.String(), "[]")) {
			if _, err := strconv.Atoi(item); err == nil {
				offsets = append(offsets, item)
			}
		}
		if got := strings.Join(offsets, " "); got != "1 2 3 4 5 6 7 8 9 10" {
			t.Errorf("handler saw offsets %s, want 1 to 10 once each, in order (%s)", got, rec.String())
		}
		if first := fmt.Sprintf("recovered=true since=e1/%d at=e1/10", k); !strings.Contains(rec.String(), first) {
			t.Errorf("handler saw %s, want the recovery %s", rec.String(), first)
		}
	})
}
