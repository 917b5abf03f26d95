package client_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
	"github.com/heraldhq/herald/protocol"
)

// These tests run the client against a real server: backlog, history
// pages, presence and join/leave as the server serves them.

// roomOptions turn presence and join/leave on for the namespace "room",
// and lift the request rate for publishers.
func roomOptions() herald.Options {
	return herald.Options{Rate: 10000, Burst: 10000, Namespaces: map[string]herald.NamespaceOptions{
		"room": {Presence: true, JoinLeave: true},
	}}
}

// dialSession dials url and returns the client with its session id.
func dialSession(t *testing.T, url string) (*client.Client, string) {
	t.Helper()
	session := make(chan string, 1)
	c := dialClient(t, url, &client.Options{OnStateChange: func(ch client.StateChange) {
		if ch.State == client.StateConnected {
			select {
			case session <- ch.Session:
			default:
			}
		}
	}})
	select {
	case s := <-session:
		return c, s
	case <-time.After(10 * time.Second):
		t.Fatal("no session")
		return nil, ""
	}
}

// TestLastBacklogUnderConcurrentPublishing subscribes with Last while
// another client publishes as fast as it can, many times: the handler gets
// the newest 50 messages from before the subscribe and then every live one,
// consecutive offsets with no gap and no duplicate at the boundary.
func TestLastBacklogUnderConcurrentPublishing(t *testing.T) {
	const last, runs = 50, 20
	n := testnode.Start(t, roomOptions())
	pc := dialClient(t, n.URL(), nil)
	for run := range runs {
		channel := fmt.Sprintf("feed-%d", run)
		var acked atomic.Uint64 // the newest offset the publisher has been told of
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			for i := 1; ; i++ {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				off, err := pc.Publish(t.Context(), channel, numbered{i})
				if err != nil {
					done <- fmt.Errorf("publish %d: %w", i, err)
					return
				}
				acked.Store(off)
			}
		}()
		eventually(t, 10*time.Second, "publishing under way", func() bool { return acked.Load() > 2*last })

		var got seen
		sc := dialClient(t, n.URL(), nil)
		before := acked.Load()
		if _, err := sc.Subscribe(t.Context(), channel, got.handle, client.Last(last)); err != nil {
			t.Fatal(err)
		}
		after := acked.Load()
		eventually(t, 10*time.Second, "live messages after the backlog", func() bool { return got.count() > 2*last })
		close(stop)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		final := acked.Load()
		eventually(t, 10*time.Second, "every message up to the last published", func() bool {
			got.mu.Lock()
			defer got.mu.Unlock()
			return got.offsets[len(got.offsets)-1] >= final
		})
		time.Sleep(20 * time.Millisecond) // room for a duplicate to show up
		sc.Close()

		got.mu.Lock()
		first := got.offsets[0]
		// The backlog ends at the channel's offset when the server
		// subscribed, which lies between before and a publication acked
		// after Subscribe returned (the publisher may be one ahead).
		if first+last-1 < before || first+last-1 > after+1 {
			t.Errorf("run %d: backlog starts at %d, want the %d before an offset in [%d, %d]", run, first, last, before, after+1)
		}
		for i, off := range got.offsets {
			if off != first+uint64(i) || got.ns[i] != int(off) {
				t.Fatalf("run %d: message %d is offset %d n=%d after offset %d: gap, duplicate or disorder",
					run, i, off, got.ns[i], got.offsets[max(i-1, 0)])
			}
		}
		if l := got.offsets[len(got.offsets)-1]; l != final {
			t.Errorf("run %d: last offset %d, want %d", run, l, final)
		}
		got.mu.Unlock()
	}
}

// TestHistoryPagesFromServer publishes 250 messages and pages back through
// them 100 at a time: 151-250, 51-150, 1-50, each oldest first with the
// server's ts and the publisher's session, and no page after the last.
func TestHistoryPagesFromServer(t *testing.T) {
	n := testnode.Start(t, roomOptions())
	pc, session := dialSession(t, n.URL())
	start := time.Now().Add(-time.Second)
	for i := 1; i <= 250; i++ {
		if _, err := pc.Publish(t.Context(), "news", numbered{i}); err != nil {
			t.Fatal(err)
		}
	}
	c := dialClient(t, n.URL(), nil)
	want := []struct {
		first, last uint64
		more        bool
	}{{151, 250, true}, {51, 150, true}, {1, 50, false}}
	opts := &client.HistoryOptions{Limit: 100}
	for i, w := range want {
		if opts == nil {
			t.Fatalf("page %d: Older returned nil", i)
		}
		p, err := c.History(t.Context(), "news", opts)
		if err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
		if len(p.Messages) == 0 || p.Messages[0].Offset != w.first || p.Messages[len(p.Messages)-1].Offset != w.last ||
			len(p.Messages) != int(w.last-w.first+1) || p.More != w.more || p.Offset != 250 {
			t.Fatalf("page %d: %d messages from %v, more %v, offset %d; want %d to %d, more %v, offset 250",
				i, len(p.Messages), offsets(p.Messages), p.More, p.Offset, w.first, w.last, w.more)
		}
		for j, m := range p.Messages {
			var v numbered
			if err := json.Unmarshal(m.Data, &v); err != nil || v.N != int(m.Offset) {
				t.Fatalf("page %d message %d: offset %d data %s", i, j, m.Offset, m.Data)
			}
			if m.From != (client.Member{Client: session}) || m.TS.Before(start) || m.TS.After(time.Now()) {
				t.Fatalf("page %d message %d: From %+v TS %v, want client %s and a ts of this test", i, j, m.From, m.TS, session)
			}
			if j > 0 && m.TS.Before(p.Messages[j-1].TS) {
				t.Fatalf("page %d: ts goes back at offset %d", i, m.Offset)
			}
		}
		opts = p.Older()
	}
	if opts != nil {
		t.Errorf("Older after the oldest page: %+v, want nil", opts)
	}

	// Bad requests are refused and the connection keeps serving.
	_, err := c.History(t.Context(), "news", &client.HistoryOptions{Limit: client.MaxHistoryLimit + 1})
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeBadRequest {
		t.Errorf("limit too large: %v, want bad_request", err)
	}
	if p, err := c.History(t.Context(), "news", &client.HistoryOptions{Limit: 1}); err != nil || len(p.Messages) != 1 || p.Messages[0].Offset != 250 {
		t.Errorf("newest message after a refusal: %+v, %v", p, err)
	}
}

func offsets(ms []client.Message) []uint64 {
	var out []uint64
	for _, m := range ms {
		out = append(out, m.Offset)
	}
	return out
}

// TestPresenceFromServer: two subscribed clients are both members of the
// channel; after one unsubscribes the other is alone; a namespace without
// presence answers bad_request.
func TestPresenceFromServer(t *testing.T) {
	n := testnode.Start(t, roomOptions())
	a, sa := dialSession(t, n.URL())
	b, sb := dialSession(t, n.URL())
	if _, err := a.Subscribe(t.Context(), "room:1", func(client.Message) {}); err != nil {
		t.Fatal(err)
	}
	subB, err := b.Subscribe(t.Context(), "room:1", func(client.Message) {})
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Presence(t.Context(), "room:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	members := func(p *client.Presence) []string {
		var out []string
		for _, m := range p.Members {
			out = append(out, m.Client)
		}
		slices.Sort(out)
		return out
	}
	want := []string{sa, sb}
	slices.Sort(want)
	if p.Clients != 2 || p.Users != 0 || p.Truncated || !slices.Equal(members(p), want) {
		t.Errorf("presence %+v, want clients 2 users 0 members %v", p, want)
	}
	if p, err := a.Presence(t.Context(), "room:1", &client.PresenceOptions{CountOnly: true}); err != nil || p.Clients != 2 || len(p.Members) != 0 {
		t.Errorf("count only: %+v, %v", p, err)
	}

	if err := subB.Unsubscribe(t.Context()); err != nil {
		t.Fatal(err)
	}
	p, err = b.Presence(t.Context(), "room:1", nil) // needs no subscription
	if err != nil || p.Clients != 1 || !slices.Equal(members(p), []string{sa}) {
		t.Errorf("after b unsubscribed: %+v, %v, want only %s", p, err, sa)
	}

	_, err = a.Presence(t.Context(), "news", nil)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeBadRequest {
		t.Errorf("presence off: %v, want bad_request", err)
	}
	if _, err := a.Presence(t.Context(), "room:1", nil); err != nil {
		t.Errorf("after a refusal: %v", err)
	}
}

// TestJoinLeaveFromServer: a subscriber hears of the client that subscribes
// after it, then of its unsubscribe and of another that closes, in order
// with the channel's messages.
func TestJoinLeaveFromServer(t *testing.T) {
	n := testnode.Start(t, roomOptions())
	a, _ := dialSession(t, n.URL())
	var mu sync.Mutex
	var events []string
	add := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	_, err := a.Subscribe(t.Context(), "room:1", func(m client.Message) { add("message " + string(m.Data)) },
		client.OnJoin(func(m client.Member) { add("join " + m.Client) }),
		client.OnLeave(func(m client.Member) { add("leave " + m.Client) }))
	if err != nil {
		t.Fatal(err)
	}
	b, sb := dialSession(t, n.URL())
	subB, err := b.Subscribe(t.Context(), "room:1", func(client.Message) {})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(t.Context(), "room:1", "hi"); err != nil {
		t.Fatal(err)
	}
	if err := subB.Unsubscribe(t.Context()); err != nil {
		t.Fatal(err)
	}
	c, sc := dialSession(t, n.URL())
	if _, err := c.Subscribe(t.Context(), "room:1", func(client.Message) {}); err != nil {
		t.Fatal(err)
	}
	c.Close()

	want := []string{"join " + sb, `message "hi"`, "leave " + sb, "join " + sc, "leave " + sc}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(events)
		got := slices.Clone(events)
		mu.Unlock()
		if n >= len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s, events %q, want %q", got, want)
		}
	}
	time.Sleep(20 * time.Millisecond) // room for an extra event to show up
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(events, want) {
		t.Errorf("events %q, want %q", events, want)
	}
}
