package herald_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/internal/heraldtest"
)

func TestMain(m *testing.M) {
	if url := os.Getenv("HERALD_HOSTILE_TARGET"); url != "" {
		runAttacker(url)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func TestWelcome(t *testing.T) {
	srv := startServer(t, &herald.Options{PingInterval: 20 * time.Second, PongTimeout: 7 * time.Second, MaxMessageBytes: 1000})
	c := heraldtest.MustDial(t, srv.url, nil)
	w := c.Expect(t, "welcome").Fields()
	if s, _ := w["session"].(string); !strings.HasPrefix(s, "s_") {
		t.Errorf("session = %v", w["session"])
	}
	if w["server"] != "herald/"+herald.Version || w["ping_interval_ms"] != 20000.0 ||
		w["pong_timeout_ms"] != 7000.0 || w["max_message_bytes"] != 1000.0 {
		t.Errorf("welcome = %v", w)
	}
	if _, ok := w["id"]; ok {
		t.Errorf("welcome without hello carries an id: %v", w)
	}
	if _, ok := w["user"]; ok {
		t.Errorf("anonymous welcome carries a user: %v", w)
	}
}

func TestRequestTable(t *testing.T) {
	srv := startServer(t, nil)
	a := heraldtest.DialWelcome(t, srv.url, nil)
	b := heraldtest.DialWelcome(t, srv.url, nil)

	a.Send(t, `{"type":"subscribe","id":2,"channel":"chat"}`)
	sub := a.Expect(t, "subscribed").Fields()
	if sub["id"] != 2.0 || sub["channel"] != "chat" || sub["offset"] != 0.0 || sub["epoch"] == "" {
		t.Fatalf("subscribed = %v", sub)
	}
	if _, ok := sub["recovered"]; ok {
		t.Errorf("subscribe without since answered with recovered: %v", sub)
	}

	b.Send(t, `{"type":"publish","id":4,"channel":"chat","data":{"text":"hi"},"key":"k-01J9"}`)
	if p := b.Expect(t, "published").Fields(); p["id"] != 4.0 || p["channel"] != "chat" || p["offset"] != 1.0 {
		t.Fatalf("published = %v", p)
	}
	msg := a.Expect(t, "message").Fields()
	if msg["channel"] != "chat" || msg["offset"] != 1.0 || fmt.Sprint(msg["data"]) != "map[text:hi]" {
		t.Fatalf("message = %v", msg)
	}

	// A second subscriber sees the newest offset at subscribe time.
	b.Send(t, `{"type":"subscribe","id":7,"channel":"chat"}`)
	if s := b.Expect(t, "subscribed").Fields(); s["offset"] != 1.0 || s["epoch"] != sub["epoch"] {
		t.Fatalf("subscribed = %v, first epoch %v", s, sub["epoch"])
	}

	a.Send(t, `{"type":"ping","id":5}`)
	if p := a.Expect(t, "pong").Fields(); p["id"] != 5.0 {
		t.Fatalf("pong = %v", p)
	}

	a.Send(t, `{"type":"unsubscribe","id":3,"channel":"chat"}`)
	if u := a.Expect(t, "unsubscribed").Fields(); u["id"] != 3.0 || u["channel"] != "chat" {
		t.Fatalf("unsubscribed = %v", u)
	}
	// Unsubscribed: the next publication reaches b only.
	b.Send(t, `{"type":"publish","id":8,"channel":"chat","data":"two"}`)
	if m := b.Expect(t, "message").Fields(); m["offset"] != 2.0 || m["data"] != "two" {
		t.Fatalf("b got %v", m)
	}
	b.Expect(t, "published")
	a.Send(t, `{"type":"ping","id":9}`)
	a.Expect(t, "pong") // not a message: a left the channel
}

func TestPublisherSubscribedReceivesOwnMessage(t *testing.T) {
	srv := startServer(t, nil)
	a := heraldtest.DialWelcome(t, srv.url, nil)
	a.Send(t, `{"type":"subscribe","id":1,"channel":"room"}`)
	a.Expect(t, "subscribed")
	a.Send(t, `{"type":"publish","id":2,"channel":"room","data":[1,2,3]}`)
	got := map[string]bool{}
	for range 2 {
		f, err := a.Next(heraldtest.Timeout)
		if err != nil {
			t.Fatal(err)
		}
		got[f.Type] = true
	}
	if !got["message"] || !got["published"] {
		t.Fatalf("got %v, want message and published", got)
	}
}

func TestFireAndForgetGetsNoReply(t *testing.T) {
	srv := startServer(t, nil)
	a := heraldtest.DialWelcome(t, srv.url, nil)
	a.Send(t, `{"type":"subscribe","channel":"news"}`)
	a.Send(t, `{"type":"publish","channel":"news","data":1}`)
	a.Send(t, `{"type":"ping","id":1}`)
	// Neither the subscribe nor the publish is confirmed; the message is the
	// first frame.
	if m := a.Expect(t, "message").Fields(); m["data"] != 1.0 {
		t.Fatalf("message = %v", m)
	}
	a.Expect(t, "pong")
}

func TestErrors(t *testing.T) {
	srv := startServer(t, &herald.Options{MaxSubscriptions: 2})
	c := heraldtest.DialWelcome(t, srv.url, nil)
	cases := []struct {
		name, frame, code string
		id                uint64
	}{
		{"not JSON", `{"type":`, "bad_request", 0},
		{"not an object", `[1,2]`, "bad_request", 0},
		{"missing type", `{"id":3}`, "bad_request", 3},
		{"unknown type", `{"type":"dance","id":4}`, "unknown_type", 4},
		{"server frame from client", `{"type":"welcome","id":5,"session":"x"}`, "unknown_type", 0},
		{"bad channel", `{"type":"subscribe","id":6,"channel":"no spaces"}`, "invalid_channel", 6},
		{"long channel", `{"type":"subscribe","id":7,"channel":"` + strings.Repeat("a", 256) + `"}`, "invalid_channel", 7},
		{"missing channel", `{"type":"subscribe","id":8}`, "bad_request", 8},
		{"missing data", `{"type":"publish","id":9,"channel":"x"}`, "bad_request", 9},
		{"ill-typed field", `{"type":"publish","id":10,"channel":5,"data":1}`, "bad_request", 10},
		{"bad id", `{"type":"ping","id":-1}`, "bad_request", 0},
		{"not subscribed", `{"type":"unsubscribe","id":11,"channel":"x"}`, "not_subscribed", 11},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.Send(t, tc.frame)
			c.ExpectError(t, tc.code, tc.id)
		})
	}

	t.Run("binary frame", func(t *testing.T) {
		c.MustWriteFrame(t, ws.OpBinary, true, []byte(`{"type":"ping","id":1}`))
		c.ExpectError(t, "bad_request", 0)
	})
}

func TestTooManySubscriptions(t *testing.T) {
	srv := startServer(t, &herald.Options{MaxSubscriptions: 2})
	c := heraldtest.DialWelcome(t, srv.url, nil)
	for i := range 2 {
		c.Send(t, fmt.Sprintf(`{"type":"subscribe","id":%d,"channel":"c%d"}`, i+1, i))
		c.Expect(t, "subscribed")
	}
	c.Send(t, `{"type":"subscribe","id":3,"channel":"c2"}`)
	c.ExpectError(t, "limit_exceeded", 3)
	// Subscribing again to a held channel is not a new subscription.
	c.Send(t, `{"type":"subscribe","id":4,"channel":"c1"}`)
	c.Expect(t, "subscribed")
	// The connection and its subscriptions are unharmed.
	c.Send(t, `{"type":"publish","id":5,"channel":"c0","data":true}`)
	c.Expect(t, "message")
	c.Expect(t, "published")
}

func TestBadInputLeavesOthersAlone(t *testing.T) {
	srv := startServer(t, nil)
	good := heraldtest.DialWelcome(t, srv.url, nil)
	good.Send(t, `{"type":"subscribe","id":1,"channel":"chat"}`)
	good.Expect(t, "subscribed")

	bad := heraldtest.DialWelcome(t, srv.url, nil)
	for range 30 {
		bad.Send(t, `not json`)
	}
	if code := bad.ExpectClose(t, 5*time.Second); code != 4029 {
		t.Fatalf("close code %d, want 4029", code)
	}

	pub := heraldtest.DialWelcome(t, srv.url, nil)
	pub.Send(t, `{"type":"publish","id":1,"channel":"chat","data":"still here"}`)
	pub.Expect(t, "published")
	if m := good.Expect(t, "message").Fields(); m["data"] != "still here" || m["offset"] != 1.0 {
		t.Fatalf("message = %v", m)
	}
}

func TestTooManyErrorsCloses4029(t *testing.T) {
	srv := startServer(t, &herald.Options{MaxErrors: 5})
	c := heraldtest.DialWelcome(t, srv.url, nil)
	for range 4 {
		c.Send(t, `{"type":"nope"}`)
		c.ExpectError(t, "unknown_type", 0)
	}
	c.Send(t, `{"type":"nope"}`)
	c.ExpectError(t, "unknown_type", 0)
	if code := c.ExpectClose(t, 5*time.Second); code != 4029 {
		t.Fatalf("close code %d, want 4029", code)
	}
}

func TestOversizeMessageCloses1009(t *testing.T) {
	srv := startServer(t, &herald.Options{MaxMessageBytes: 1024})
	c := heraldtest.DialWelcome(t, srv.url, nil)
	// Only the header of a 1 GiB frame is sent: the server must refuse it
	// from the header, without waiting for (or allocating) the payload.
	h := ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Length: 1 << 30}
	if err := ws.WriteHeader(c.NetConn(), h); err != nil {
		t.Fatal(err)
	}
	if code := c.ExpectClose(t, 5*time.Second); code != 1009 {
		t.Fatalf("close code %d, want 1009", code)
	}
}

func TestFragmentedOversizeCloses1009(t *testing.T) {
	srv := startServer(t, &herald.Options{MaxMessageBytes: 100})
	c := heraldtest.DialWelcome(t, srv.url, nil)
	c.MustWriteFrame(t, ws.OpText, false, []byte(strings.Repeat(" ", 60)))
	c.MustWriteFrame(t, ws.OpContinuation, true, []byte(strings.Repeat(" ", 60)))
	if code := c.ExpectClose(t, 5*time.Second); code != 1009 {
		t.Fatalf("close code %d, want 1009", code)
	}
}

func TestMaxConnections(t *testing.T) {
	srv := startServer(t, &herald.Options{MaxConnections: 2})
	heraldtest.DialWelcome(t, srv.url, nil)
	heraldtest.DialWelcome(t, srv.url, nil)
	resp := upgradeRequest(t, srv.http.URL+"/ws", nil)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third connection: status %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestShutdownClosesWith1001AfterFlushing(t *testing.T) {
	srv := startServer(t, &herald.Options{DrainWindow: 200 * time.Millisecond})
	var subs []*heraldtest.Conn
	for range 5 {
		c := heraldtest.DialWelcome(t, srv.url, nil)
		c.Send(t, `{"type":"subscribe","id":1,"channel":"news"}`)
		c.Expect(t, "subscribed")
		subs = append(subs, c)
	}
	pub := heraldtest.DialWelcome(t, srv.url, nil)
	pub.Send(t, `{"type":"publish","id":1,"channel":"news","data":"last words"}`)
	pub.Expect(t, "published")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	for _, c := range subs {
		if m := c.Expect(t, "message").Fields(); m["data"] != "last words" {
			t.Fatalf("message = %v", m)
		}
		if code := c.ExpectClose(t, 5*time.Second); code != 1001 {
			t.Fatalf("close code %d, want 1001", code)
		}
		c.MustWriteFrame(t, ws.OpClose, true, ws.NewCloseFrameBody(1001, ""))
	}
	pub.ExpectClose(t, 5*time.Second)
	pub.MustWriteFrame(t, ws.OpClose, true, ws.NewCloseFrameBody(1001, ""))
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	resp := upgradeRequest(t, srv.http.URL+"/ws", nil)
	if resp.StatusCode != 503 {
		t.Fatalf("upgrade after shutdown: status %d, want 503", resp.StatusCode)
	}
}

// TestNewReturnsWithTheBrokerLoopsRunning: once New returns, the broker
// delivers publications, joins and leaves to the server, so that none made
// at once is delivered to nobody: another Run or WatchPresence finds one
// in place.
func TestNewReturnsWithTheBrokerLoopsRunning(t *testing.T) {
	for range 20 {
		m := broker.NewMemory(nil)
		srv := herald.New(&herald.Options{Broker: m})
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		runErr := m.Run(ctx, func(broker.Publication) {})
		watchErr := m.WatchPresence(ctx, func(broker.PresenceEvent) {})
		cancel()
		srv.Close()
		m.Close()
		if !errors.Is(runErr, broker.ErrRunning) || !errors.Is(watchErr, broker.ErrRunning) {
			t.Fatalf("Run and WatchPresence right after New: %v, %v, want ErrRunning: the server's loops were not running yet", runErr, watchErr)
		}
	}
}
