package client_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/protocol"
)

// disconnectedClient returns a client whose server dropped it and refuses to
// let it back in until the returned function is called.
func disconnectedClient(t *testing.T, o *client.Options) (*client.Client, *fakeServer, func()) {
	t.Helper()
	var mu sync.Mutex
	open := false
	f := &fakeServer{t: t,
		refuse: func(n int) bool {
			mu.Lock()
			defer mu.Unlock()
			return n > 0 && !open
		},
		script: func(n int, s *fakeSession) {
			if n == 0 {
				s.drop()
			}
		}}
	c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(o))
	if err != nil {
		t.Fatal(err)
	}
	synctest.Wait()
	if st := c.State(); st == client.StateConnected {
		t.Fatalf("client still %v after the drop", st)
	}
	return c, f, func() {
		mu.Lock()
		open = true
		mu.Unlock()
	}
}

// TestQueueOverflowFailsAtOnce fills the offline queue's 100 messages: the
// next publish fails at once with ErrQueueFull, and so does one that would
// pass the byte bound.
func TestQueueOverflowFailsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _, _ := disconnectedClient(t, &client.Options{QueueBytes: 10 << 10})
		defer c.Close()
		for i := range 100 {
			go c.Publish(t.Context(), "chat", i)
		}
		synctest.Wait()
		start := time.Now()
		_, err := c.Publish(t.Context(), "chat", "one too many")
		if !errors.Is(err, client.ErrQueueFull) || time.Since(start) != 0 {
			t.Errorf("101st publish: %v after %v, want ErrQueueFull at once", err, time.Since(start))
		}
		if !strings.HasPrefix(err.Error(), "herald: ") {
			t.Errorf("error %q lacks the herald: prefix", err)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		c, _, _ := disconnectedClient(t, &client.Options{QueueBytes: 10 << 10})
		defer c.Close()
		big := strings.Repeat("x", 6<<10)
		go c.Publish(t.Context(), "chat", big)
		synctest.Wait()
		if _, err := c.Publish(t.Context(), "chat", big); !errors.Is(err, client.ErrQueueFull) {
			t.Errorf("publish past the byte bound: %v, want ErrQueueFull", err)
		}
	})
}

// TestQueueTimeout checks that a queued publish fails after 60 s.
func TestQueueTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _, _ := disconnectedClient(t, nil)
		defer c.Close()
		start := time.Now()
		_, err := c.Publish(t.Context(), "chat", "late")
		if !errors.Is(err, client.ErrQueueTimeout) || time.Since(start) != time.Minute {
			t.Errorf("publish: %v after %v, want ErrQueueTimeout after 1m", err, time.Since(start))
		}
	})
}

// TestQueueSentAfterResubscription checks the order after a reconnect:
// resubscriptions first, then the queued publishes, oldest first.
func TestQueueSentAfterResubscription(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sessions := make(chan *fakeSession, 2)
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) { sessions <- s }}
		c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(nil))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Subscribe(t.Context(), "chat", func(client.Message) {}); err != nil {
			t.Fatal(err)
		}
		(<-sessions).drop()
		synctest.Wait()
		results := make(chan string, 3)
		for i := range 3 {
			go func() {
				off, err := c.Publish(t.Context(), "chat", i)
				results <- fmt.Sprint(off, err)
			}()
			synctest.Wait() // queue them in order
		}
		s := <-sessions
		var got []string
		for range 4 {
			f := <-s.in
			if p, ok := f.(*protocol.Publish); ok {
				got = append(got, string(p.Data))
			} else {
				got = append(got, f.Type())
			}
		}
		if fmt.Sprint(got) != "[subscribe 0 1 2]" {
			t.Errorf("after reconnect the client sent %v, want [subscribe 0 1 2]", got)
		}
		for range 3 {
			if r := <-results; strings.HasSuffix(r, "<nil>") == false {
				t.Errorf("publish result %s", r)
			}
		}
	})
}

// TestUnconfirmedPublishResentWithSameKey drops the connection after the
// server received a publish but before it answered: the client sends it
// again on the next connection with the same idempotency key, and Publish
// returns the offset of that answer.
func TestUnconfirmedPublishResentWithSameKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		keys := make(chan string, 2)
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
			if n == 0 {
				s.setSilent(true)
				keys <- s.next(t, protocol.TypePublish).(*protocol.Publish).Key
				s.drop()
				return
			}
			keys <- s.next(t, protocol.TypePublish).(*protocol.Publish).Key
		}}
		c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(nil))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		off, err := c.Publish(t.Context(), "chat", json.RawMessage(`{"text":"once"}`))
		if err != nil || off != 1 {
			t.Errorf("Publish = %d, %v; want 1 from the second connection", off, err)
		}
		first, second := <-keys, <-keys
		if first == "" || first != second {
			t.Errorf("keys %q then %q, want the same non-empty key twice", first, second)
		}
		if len(first) != 36 || first[14] != '7' {
			t.Errorf("key %q is not a UUIDv7", first)
		}
	})
}

// TestRateLimitedFlushRetried: the server rate-limits the burst of queued
// publishes (and a resubscription) sent after a reconnect; the client sends
// each again after retry_after_ms instead of failing it.
func TestRateLimitedFlushRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drop := make(chan struct{})
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
			if n == 0 {
				<-drop
				s.drop()
				return
			}
			s.setSilent(true)
			go limitFirstTry(s)
		}}
		c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(nil))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sub, err := c.Subscribe(t.Context(), "chat", func(client.Message) {})
		if err != nil {
			t.Fatal(err)
		}
		close(drop)
		synctest.Wait()
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Go(func() {
				if _, err := c.Publish(t.Context(), "chat", i); err != nil {
					t.Errorf("queued publish %d: %v", i, err)
				}
			})
		}
		synctest.Wait()
		if n := c.Queued(); n != 5 {
			t.Fatalf("%d publishes queued, want 5", n)
		}
		wg.Wait()
		if err := sub.Err(); err != nil {
			t.Errorf("subscription ended by a rate-limited resubscribe: %v", err)
		}
	})
}

// limitFirstTry answers the first try of every subscribe and publish with
// rate_limited, and the second normally.
func limitFirstTry(s *fakeSession) {
	limited := map[string]bool{}
	for {
		var f protocol.Frame
		select {
		case f = <-s.in:
		case <-s.gone:
			return
		}
		var id uint64
		var key string
		switch r := f.(type) {
		case *protocol.Subscribe:
			id, key = r.ID, "sub:"+r.Channel
		case *protocol.Publish:
			id, key = r.ID, r.Key
		default:
			continue
		}
		if limited[key] {
			s.answer(f)
			continue
		}
		limited[key] = true
		s.send(&protocol.Error{ID: id, Code: protocol.CodeRateLimited, Message: "slow down", RetryAfterMS: 100})
	}
}
