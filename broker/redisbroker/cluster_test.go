package redisbroker_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// subscriber is a raw client that records the messages of one channel in
// its own goroutine until its connection ends.
type subscriber struct {
	c        *heraldtest.Conn
	reply    heraldtest.Frame // the subscribed reply
	mu       sync.Mutex
	messages []heraldtest.Frame
	err      error // why reading stopped
	done     chan struct{}
}

func subscribeOn(t *testing.T, url, channel string) *subscriber {
	t.Helper()
	s := &subscriber{c: heraldtest.DialWelcome(t, url, nil), done: make(chan struct{})}
	s.reply = s.c.Subscribe(t, 1, channel, nil)
	go s.read()
	return s
}

func (s *subscriber) read() {
	defer close(s.done)
	for {
		f, err := s.c.Next(time.Minute)
		s.mu.Lock()
		switch {
		case err != nil:
			s.err = err
		case f.Type != "message":
			s.err = fmt.Errorf("unexpected frame %+v", f)
		default:
			s.messages = append(s.messages, f)
		}
		stop := s.err != nil
		s.mu.Unlock()
		if stop {
			return
		}
	}
}

func (s *subscriber) got() []heraldtest.Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]heraldtest.Frame(nil), s.messages...)
}

// waitCount waits until s has n messages.
func (s *subscriber) waitCount(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.got()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("subscriber has %d messages after 10s, want %d (%v)", len(s.got()), n, s.err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkData checks that f carries {"n":want}.
func checkData(t *testing.T, f heraldtest.Frame, want uint64) {
	t.Helper()
	var d struct{ N uint64 }
	if err := json.Unmarshal(f.Data, &d); err != nil || d.N != want {
		t.Fatalf("message at offset %d carries %s, want {\"n\":%d}", f.Offset, f.Data, want)
	}
}

// TestTwoNodes: a client on node A publishes while clients on node B
// receive every message in order; node B dies mid-stream, its clients
// reconnect to node A with the position of the last message they got and
// recover exactly the messages they missed, then the live stream, with no
// loss and no duplicate.
func TestTwoNodes(t *testing.T) {
	const (
		channel = "chat:two-nodes"
		total   = 300
		killAt  = 100 // messages every client of B has before B dies
		clients = 3
	)
	r := startRedis(t)
	a := startNode(t, r, "cluster:")
	b := startNode(t, r, "cluster:")
	subs := make([]*subscriber, clients)
	for i := range subs {
		subs[i] = subscribeOn(t, b.URL(), channel)
	}
	epoch := subs[0].reply.Epoch

	pub := heraldtest.DialWelcome(t, a.URL(), nil)
	pubDone := make(chan error, 1)
	go func() {
		for i := uint64(1); i <= total; i++ {
			f, err := pub.Publish(i, channel, fmt.Sprintf(`{"n":%d}`, i), "")
			if err == nil && (f.Type != "published" || f.Offset != i) {
				err = fmt.Errorf("publish %d: got %+v, want published at offset %d", i, f, i)
			}
			if err != nil {
				pubDone <- err
				return
			}
			time.Sleep(time.Millisecond) // keep publishing while B dies and its clients come back
		}
		pubDone <- nil
	}()

	for _, s := range subs {
		s.waitCount(t, killAt)
	}
	b.kill()
	for i, s := range subs {
		<-s.done
		got := s.got()
		for j, f := range got {
			if f.Channel != channel || f.Offset != uint64(j+1) {
				t.Fatalf("client %d on node B: message %d has offset %d, want %d", i, j, f.Offset, j+1)
			}
			checkData(t, f, f.Offset)
		}
	}

	// Every client of B comes back on A at once, with the position of the
	// last message it got.
	type back struct {
		c     *heraldtest.Conn
		last  uint64
		reply heraldtest.Frame
	}
	backs := make([]back, clients)
	for i, s := range subs {
		got := s.got()
		last := got[len(got)-1].Offset
		c := heraldtest.DialWelcome(t, a.URL(), nil)
		reply := c.Subscribe(t, 1, channel, &heraldtest.Frame{Epoch: epoch, Offset: last})
		if reply.Recovered == nil || !*reply.Recovered || reply.Epoch != epoch {
			t.Fatalf("client %d resubscribing on node A since %d: %+v, want recovered:true in epoch %s", i, last, reply, epoch)
		}
		backs[i] = back{c: c, last: last, reply: reply}
	}
	for i, bk := range backs {
		for want := bk.last + 1; want <= total; want++ {
			f, err := bk.c.Next(10 * time.Second)
			if err != nil {
				select {
				case perr := <-pubDone:
					t.Fatalf("client %d waiting for offset %d: %v; the publisher stopped: %v", i, want, err, perr)
				default:
					t.Fatalf("client %d waiting for offset %d: %v", i, want, err)
				}
			}
			if f.Type != "message" || f.Offset != want {
				t.Fatalf("client %d after recovery since %d (replayed to %d): %+v, want the message at offset %d", i, bk.last, bk.reply.Offset, f, want)
			}
			checkData(t, f, want)
		}
		t.Logf("client %d: %d messages on node B, %d replayed by node A, %d live", i, bk.last, bk.reply.Offset-bk.last, total-bk.reply.Offset)
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
}

// TestRedisRestart: one node, Redis killed and restarted empty (no
// persistence). Messages before and after are delivered; while Redis is
// down publishes are answered unavailable, /readyz fails and connections
// stay open; afterwards a client resubscribing with its old position is
// told recovered:false with the new epoch.
func TestRedisRestart(t *testing.T) {
	const channel = "chat:restart"
	r := startRedis(t)
	n := startNode(t, r, "restart:")
	sub := heraldtest.DialWelcome(t, n.URL(), nil)
	subscribed := sub.Subscribe(t, 1, channel, nil)
	pub := heraldtest.DialWelcome(t, n.URL(), nil)
	for i := uint64(1); i <= 5; i++ {
		if f, err := pub.Publish(i, channel, fmt.Sprintf(`{"n":%d}`, i), ""); err != nil || f.Type != "published" || f.Offset != i {
			t.Fatalf("publish %d: %+v, %v", i, f, err)
		}
		m := sub.Expect(t, "message")
		if m.Offset != i {
			t.Fatalf("message offset %d, want %d", m.Offset, i)
		}
		checkData(t, m, i)
	}
	before := heraldtest.Frame{Epoch: subscribed.Epoch, Offset: 5}

	r.Stop()
	waitStatus(t, n, http.StatusServiceUnavailable)
	f, err := pub.Publish(6, channel, `{"n":6}`, "k-6")
	if err != nil || f.Type != "error" || f.Code != "unavailable" {
		t.Fatalf("publish with Redis down: %+v, %v; want error unavailable", f, err)
	}
	for name, c := range map[string]*heraldtest.Conn{"publisher": pub, "subscriber": sub} {
		if err := c.SendJSON(map[string]any{"type": "ping", "id": 99}); err != nil {
			t.Fatalf("%s: ping: %v", name, err)
		}
		if f := c.Expect(t, "pong"); f.ID != 99 {
			t.Fatalf("%s: pong %+v", name, f)
		}
	}

	r.Restart()
	waitStatus(t, n, http.StatusOK)
	// The client retries the publish that failed, with its key.
	f, err = pub.Publish(7, channel, `{"n":6}`, "k-6")
	if err != nil || f.Type != "published" || f.Offset != 1 {
		t.Fatalf("retried publish after the restart: %+v, %v; want published at offset 1 of a new stream", f, err)
	}
	// The node subscribed again on its own, and the subscriber's stream was
	// reset under it: the server closes its connection with 1012 rather than
	// pass on offsets that restarted, so the client resubscribes and learns
	// recovered:false (as the late client below does).
	if _, err := sub.Next(10 * time.Second); err == nil || !strings.Contains(err.Error(), "1012") {
		t.Fatalf("subscriber after the stream was reset: %v, want close 1012", err)
	}

	late := heraldtest.DialWelcome(t, n.URL(), nil)
	reply := late.Subscribe(t, 1, channel, &before)
	if reply.Recovered == nil || *reply.Recovered || reply.Epoch == before.Epoch || reply.Offset != 1 {
		t.Fatalf("subscribe since %s/%d after Redis lost the stream: %+v; want recovered:false, a new epoch, offset 1", before.Epoch, before.Offset, reply)
	}
	if f, err := pub.Publish(8, channel, `{"n":7}`, ""); err != nil || f.Type != "published" || f.Offset != 2 {
		t.Fatalf("publish after the restart: %+v, %v", f, err)
	}
	m := late.Expect(t, "message")
	if m.Offset != 2 {
		t.Fatalf("message offset %d, want 2", m.Offset)
	}
	checkData(t, m, 7)
}

// waitStatus waits until the node's /readyz answers code.
func waitStatus(t *testing.T, n *node, code int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.ready(t) != code {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not answer %d within 10s", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
