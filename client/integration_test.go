package client_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
	"github.com/heraldhq/herald/protocol"
)

type numbered struct {
	N int `json:"n"`
}

// seen records what a handler received.
type seen struct {
	mu      sync.Mutex
	ns      []int
	offsets []uint64
	recs    []client.Recovery
}

func (s *seen) handle(m client.Message) {
	var v numbered
	json.Unmarshal(m.Data, &v)
	s.mu.Lock()
	s.ns = append(s.ns, v.N)
	s.offsets = append(s.offsets, m.Offset)
	s.mu.Unlock()
}

func (s *seen) recovery(r client.Recovery) {
	s.mu.Lock()
	s.recs = append(s.recs, r)
	s.mu.Unlock()
}

func (s *seen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ns)
}

// checkExactlyOnce fails unless the handler saw 1..total, each once, in
// order, with consecutive offsets.
func (s *seen) checkExactlyOnce(t *testing.T, total int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ns) != total {
		t.Errorf("handler got %d messages, want %d", len(s.ns), total)
	}
	for i, n := range s.ns {
		if n != i+1 || (i > 0 && s.offsets[i] != s.offsets[i-1]+1) {
			t.Fatalf("message %d is n=%d offset=%d (previous offset %d): lost, repeated or out of order",
				i, n, s.offsets[i], s.offsets[max(i-1, 0)])
		}
	}
}

// TestServerKilledNothingLost subscribes through one server while a
// publisher keeps publishing through a second server that shares the
// broker, and kills the first server twice (listener and connections closed
// abruptly), restarting it on the same address with the same broker: the
// handler sees every message exactly once, in order, and the client reports
// two successful recoveries.
func TestServerKilledNothingLost(t *testing.T) {
	b := broker.NewMemory(nil)
	t.Cleanup(func() { b.Close() })
	// The publisher goes faster than the default 50 requests/s.
	subNode := testnode.Start(t, herald.Options{Broker: b})
	pubNode := testnode.Start(t, herald.Options{Broker: testnode.PublishOnly{Broker: b}, Rate: 10000, Burst: 10000})

	var got seen
	sc := dialClient(t, subNode.URL(), nil)
	if _, err := sc.Subscribe(t.Context(), "chat", got.handle, client.OnRecovery(got.recovery)); err != nil {
		t.Fatal(err)
	}
	pc := dialClient(t, pubNode.URL(), nil)
	const total = 600
	published := make(chan error, 1)
	go func() {
		for i := 1; i <= total; i++ {
			if _, err := pc.Publish(t.Context(), "chat", numbered{i}); err != nil {
				published <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
			time.Sleep(time.Millisecond)
		}
		published <- nil
	}()

	eventually(t, 10*time.Second, "first messages", func() bool { return got.count() >= 100 })
	subNode.Kill()
	time.Sleep(300 * time.Millisecond) // down while publishing continues
	subNode.Start()
	eventually(t, 10*time.Second, "messages after the first restart", func() bool { return got.count() >= 300 })
	subNode.Kill()
	subNode.Start()

	if err := <-published; err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "every message", func() bool { return got.count() >= total })
	// The second restart may come after the publisher is done (a reconnect
	// can take longer than the rest of the publishing): its recovery then
	// brings nothing new, but it is still reported.
	eventually(t, 10*time.Second, "both recoveries reported", func() bool {
		got.mu.Lock()
		defer got.mu.Unlock()
		return len(got.recs) >= 2
	})
	time.Sleep(100 * time.Millisecond) // room for a duplicate to show up
	got.checkExactlyOnce(t, total)
	got.mu.Lock()
	defer got.mu.Unlock()
	if len(got.recs) != 2 {
		t.Errorf("%d recoveries, want 2: %+v", len(got.recs), got.recs)
	}
	for _, r := range got.recs {
		if !r.Recovered {
			t.Errorf("recovery %+v, want recovered", r)
		}
	}
}

// TestHalfOpenDetected silently stops a TCP proxy between client and
// server, in both directions, keeping the sockets open: the client notices
// within ping interval + pong timeout, and reconnects through the proxy
// once it forwards again, with its subscription intact.
func TestHalfOpenDetected(t *testing.T) {
	const interval, timeout = 200 * time.Millisecond, 200 * time.Millisecond
	srv := testnode.Start(t, herald.Options{PingInterval: interval, PongTimeout: timeout})
	px := startProxy(t, srv.Addr())
	st := newStates()
	var got seen
	c := dialClient(t, "ws://"+px.addr()+"/ws", &client.Options{OnStateChange: st.record})
	if _, err := c.Subscribe(t.Context(), "chat", got.handle); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * interval) // server pings flow; the connection is healthy
	select {
	case ch := <-st.ch:
		if ch.State != client.StateConnecting && ch.State != client.StateConnected {
			t.Fatalf("healthy connection changed state: %+v", ch)
		}
	default:
	}

	px.set(true, toServer, toClient)
	held := time.Now()
	ch := st.await(t, client.StateDisconnected, 5*time.Second)
	noticed := time.Since(held)
	t.Logf("half-open connection noticed after %v (interval %v + timeout %v)", noticed, interval, timeout)
	if !errors.Is(ch.Err, client.ErrNoPong) {
		t.Errorf("disconnected because of %v, want ErrNoPong", ch.Err)
	}
	if noticed > interval+timeout+300*time.Millisecond {
		t.Errorf("noticed after %v, want within interval+timeout (%v) and a little scheduling", noticed, interval+timeout)
	}

	time.Sleep(time.Second)
	px.set(false, toServer, toClient)
	released := time.Now()
	st.await(t, client.StateConnected, 10*time.Second)
	t.Logf("reconnected %v after the proxy forwarded again", time.Since(released))

	pub := dialClient(t, srv.URL(), nil)
	if _, err := pub.Publish(t.Context(), "chat", numbered{1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "message after reconnect", func() bool { return got.count() == 1 })
}

// TestUnansweredPublishAppliedOnce loses the server's answers (the proxy
// holds the server-to-client direction) after a publish reached the
// server: the client drops the dead connection, reconnects, and sends the
// publish again with its idempotency key; the server applies it once, and
// Publish returns the offset of that one publication.
func TestUnansweredPublishAppliedOnce(t *testing.T) {
	const interval, timeout = 200 * time.Millisecond, 200 * time.Millisecond
	srv := testnode.Start(t, herald.Options{PingInterval: interval, PongTimeout: timeout})
	px := startProxy(t, srv.Addr())
	var got seen
	watcher := dialClient(t, srv.URL(), nil)
	if _, err := watcher.Subscribe(t.Context(), "chat", got.handle); err != nil {
		t.Fatal(err)
	}
	st := newStates()
	c := dialClient(t, "ws://"+px.addr()+"/ws", &client.Options{OnStateChange: st.record})

	px.set(true, toClient)
	type result struct {
		off uint64
		err error
	}
	res := make(chan result, 1)
	go func() {
		off, err := c.Publish(t.Context(), "chat", numbered{1})
		res <- result{off, err}
	}()
	eventually(t, 5*time.Second, "the publish reaching the server", func() bool { return got.count() == 1 })
	st.await(t, client.StateDisconnected, 5*time.Second)
	px.set(false, toClient)
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	time.Sleep(300 * time.Millisecond) // room for a duplicate to show up
	got.checkExactlyOnce(t, 1)
	got.mu.Lock()
	defer got.mu.Unlock()
	if r.off != got.offsets[0] {
		t.Errorf("Publish returned offset %d, the message has %d", r.off, got.offsets[0])
	}
}

// TestOfflineQueueAgainstServer kills the server under a subscribed client:
// 100 publishes queue, the 101st fails at once with ErrQueueFull, and after
// the restart the 100 are applied, and received, exactly once.
func TestOfflineQueueAgainstServer(t *testing.T) {
	b := broker.NewMemory(nil)
	t.Cleanup(func() { b.Close() })
	// The flush (a resubscription and 100 publishes at once) passes the
	// default burst of 100 requests; the server answers the excess with a
	// rate_limited error that lacks the request's id, which no client can
	// match to its request, so the limit is raised here.
	srv := testnode.Start(t, herald.Options{Broker: b, Rate: 1000, Burst: 1000})
	st := newStates()
	c := dialClient(t, srv.URL(), &client.Options{OnStateChange: st.record})
	var got seen
	if _, err := c.Subscribe(t.Context(), "chat", got.handle); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	st.await(t, client.StateDisconnected, 5*time.Second)

	var wg sync.WaitGroup
	offsets := make(chan uint64, 100)
	for i := 1; i <= 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off, err := c.Publish(t.Context(), "chat", numbered{i})
			if err != nil {
				t.Errorf("queued publish %d: %v", i, err)
			}
			offsets <- off
		}()
	}
	eventually(t, 5*time.Second, "100 queued publishes", func() bool { return c.Queued() == 100 })
	start := time.Now()
	_, err := c.Publish(t.Context(), "chat", numbered{101})
	if !errors.Is(err, client.ErrQueueFull) || time.Since(start) > 50*time.Millisecond {
		t.Errorf("101st publish: %v after %v, want ErrQueueFull at once", err, time.Since(start))
	}

	srv.Start()
	wg.Wait()
	close(offsets)
	distinct := map[uint64]bool{}
	for off := range offsets {
		distinct[off] = true
	}
	if len(distinct) != 100 {
		t.Errorf("100 queued publishes got %d distinct offsets", len(distinct))
	}
	eventually(t, 5*time.Second, "the queued messages", func() bool { return got.count() >= 100 })
	time.Sleep(100 * time.Millisecond)
	got.mu.Lock()
	defer got.mu.Unlock()
	ns := map[int]int{}
	for _, n := range got.ns {
		ns[n]++
	}
	if len(got.ns) != 100 || len(ns) != 100 {
		t.Errorf("subscriber got %d messages, %d distinct; want 100 once each", len(got.ns), len(ns))
	}
}

// TestServerErrorIsProtocolError checks that a refusal from the server
// reaches the caller as a *protocol.Error with its code.
func TestServerErrorIsProtocolError(t *testing.T) {
	srv := testnode.Start(t, herald.Options{})
	c := dialClient(t, srv.URL(), nil)
	sub, err := c.Subscribe(t.Context(), "chat", func(client.Message) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Unsubscribe(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, err = c.Subscribe(t.Context(), "bad channel!", func(client.Message) {})
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeInvalidChannel {
		t.Errorf("Subscribe to a bad channel: %v, want invalid_channel", err)
	}
}

// TestSlowHandlerAgainstServer stops a handler while 200 messages are
// published to its channel, with HandlerQueue 10: the client holds few of
// them, and once the handler runs again the server's history fills in the
// rest, so the handler sees all 200 once, in order, after a successful
// recovery.
func TestSlowHandlerAgainstServer(t *testing.T) {
	srv := testnode.Start(t, herald.Options{Rate: 1000, Burst: 1000})
	c := dialClient(t, srv.URL(), &client.Options{HandlerQueue: 10})
	var got seen
	release := make(chan struct{})
	handler := func(m client.Message) {
		got.handle(m)
		if m.Offset == 1 {
			<-release
		}
	}
	if _, err := c.Subscribe(t.Context(), "chat", handler, client.OnRecovery(got.recovery)); err != nil {
		t.Fatal(err)
	}
	pub := dialClient(t, srv.URL(), nil)
	for i := 1; i <= 200; i++ {
		if _, err := pub.Publish(t.Context(), "chat", numbered{i}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // what the client takes arrives
	seenStopped := got.count()
	close(release)
	eventually(t, 5*time.Second, "all 200 messages", func() bool { return got.count() >= 200 })
	time.Sleep(100 * time.Millisecond)
	got.checkExactlyOnce(t, 200)
	if seenStopped != 1 {
		t.Errorf("the stopped handler saw %d messages, want 1", seenStopped)
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	// The replay starts after the last message the client took: the one
	// running and at most 10 waiting.
	if len(got.recs) == 0 || !got.recs[0].Recovered || got.recs[0].Since.Offset > 11 {
		t.Errorf("recoveries %+v, want a successful one from offset 11 or lower", got.recs)
	}
}
