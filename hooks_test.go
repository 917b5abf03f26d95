package herald_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/heraldtest"
)

const hookSecret = "hook-secret"

// hookCall is one request a backend received.
type hookCall struct {
	hook      string // the path without its slash
	body      string
	signature string
}

// backend is an application backend on a real socket: it records every
// hook request and answers with answer(hook, body), 200 and JSON.
type backend struct {
	*httptest.Server
	mu     sync.Mutex
	calls  []hookCall
	answer func(hook string, body map[string]any) string
}

func newBackend(t *testing.T, answer func(hook string, body map[string]any) string) *backend {
	t.Helper()
	b := &backend{answer: answer}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		hook := strings.TrimPrefix(r.URL.Path, "/")
		b.mu.Lock()
		b.calls = append(b.calls, hookCall{hook: hook, body: string(raw), signature: r.Header.Get("X-Herald-Signature")})
		b.mu.Unlock()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		var body map[string]any
		json.Unmarshal(raw, &body)
		io.WriteString(w, b.answer(hook, body))
	}))
	t.Cleanup(b.Close)
	return b
}

// hooks returns HookOptions that send every hook to the backend.
func (b *backend) hooks() *herald.HookOptions {
	return &herald.HookOptions{
		Connect: b.URL + "/connect", Subscribe: b.URL + "/subscribe", Publish: b.URL + "/publish",
		RPC: b.URL + "/rpc", Refresh: b.URL + "/refresh", Secret: hookSecret,
	}
}

// received returns the bodies of the requests to hook, checking that each
// was signed with hookSecret.
func (b *backend) received(t *testing.T, hook string) []string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var bodies []string
	for _, c := range b.calls {
		if c.hook != hook {
			continue
		}
		m := hmac.New(sha256.New, []byte(hookSecret))
		m.Write([]byte(c.body))
		if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); c.signature != want {
			t.Fatalf("%s request signed %q, want %q", hook, c.signature, want)
		}
		bodies = append(bodies, c.body)
	}
	return bodies
}

func allowAlice(hook string, body map[string]any) string {
	if hook == "connect" {
		return `{"user":"alice","channels":["user:alice"]}`
	}
	return `{}`
}

func TestConnectHook(t *testing.T) {
	b := newBackend(t, allowAlice)
	srv := startServer(t, &herald.Options{Hooks: &herald.HookOptions{
		Connect: b.URL + "/connect", Secret: hookSecret,
		Headers: []string{"X-App-Version"}, Cookies: []string{"session"},
	}})
	c := heraldtest.MustDial(t, srv.url, &heraldtest.DialOptions{Header: http.Header{
		"X-App-Version": {"7"}, "X-Other": {"secret"}, "Authorization": {"Bearer xyz"},
		"Cookie": {"session=abc; tracking=def"},
	}})
	w := c.Expect(t, "welcome").Fields()
	if w["user"] != "alice" {
		t.Fatalf("welcome %v, want user alice", w)
	}
	sub := c.Expect(t, "subscribed")
	if sub.Channel != "user:alice" || sub.ID != 0 {
		t.Fatalf("server-side subscription: %s, want user:alice without id", sub)
	}
	bodies := b.received(t, "connect")
	if len(bodies) != 1 {
		t.Fatalf("connect hook called %d times, want 1", len(bodies))
	}
	remote := c.NetConn().LocalAddr().String()
	want := `{"client":"` + w["session"].(string) + `","remote":"` + remote + `","headers":{"X-App-Version":"7"},"cookies":{"session":"abc"}}`
	if bodies[0] != want {
		t.Fatalf("connect request\n%s\nwant\n%s", bodies[0], want)
	}
	if _, err := srv.Publish(t.Context(), "user:alice", []byte(`{"n":1}`), nil); err != nil {
		t.Fatal(err)
	}
	if m := c.Expect(t, "message"); m.Channel != "user:alice" || string(m.Data) != `{"n":1}` {
		t.Fatalf("got %s", m)
	}
}

func TestConnectHookRefusals(t *testing.T) {
	var answer atomic.Value
	b := newBackend(t, func(string, map[string]any) string { return answer.Load().(string) })
	srv := startServer(t, &herald.Options{Hooks: &herald.HookOptions{Connect: b.URL + "/connect"}})
	for _, tc := range []struct {
		answer string
		status int
	}{
		{`{"error":{"code":"forbidden","message":"banned"}}`, 403},
		{`{"error":{"code":"unauthorized","message":"log in"}}`, 401},
		{`{"error":{"code":"no_such_code","message":"?"}}`, 503},
		{`{"user":`, 503},
		{`[]`, 503},
		{`{"disconnect":{"code":1000,"reason":"not a 4xxx code"}}`, 503},
	} {
		answer.Store(tc.answer)
		refused(t, srv.url, nil, tc.status)
	}
	answer.Store(`{"disconnect":{"code":4501,"reason":"go away"}}`)
	c := heraldtest.MustDial(t, srv.url, nil)
	if code := c.ExpectClose(t, 5*time.Second); code != 4501 {
		t.Fatalf("close %d, want 4501", code)
	}
}

// TestHookFailures: a backend that is down, slow, answers 500 or garbage
// costs the client unavailable (the upgrade 503), counts
// herald_hook_errors_total by reason, is logged once a second, and the
// server goes on serving.
func TestHookFailures(t *testing.T) {
	var mode atomic.Value
	slow := make(chan struct{})
	defer close(slow)
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch mode.Load() {
		case "status":
			http.Error(w, "oops", 500)
		case "bad_answer":
			io.WriteString(w, "<html>")
		case "timeout":
			select {
			case <-slow:
			case <-r.Context().Done():
			}
		default:
			io.WriteString(w, "{}")
		}
	}))
	defer b.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()

	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	var logMu sync.Mutex
	srv := startServer(t, &herald.Options{Registry: reg, Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil)),
		Hooks: &herald.HookOptions{
			Connect: b.URL, Timeout: 200 * time.Millisecond,
			Namespaces: map[string]herald.NamespaceHooks{"down": {Subscribe: down.URL, Publish: down.URL}},
		}})
	hookErrors := func(hook, reason string) float64 {
		return hookErrorCount(t, reg, hook, reason)
	}
	for _, reason := range []string{"status", "bad_answer", "timeout"} {
		mode.Store(reason)
		for range 3 {
			refused(t, srv.url, nil, 503)
		}
		if n := hookErrors("connect", reason); n != 3 {
			t.Fatalf("hook_errors_total{connect,%s} = %v, want 3", reason, n)
		}
	}
	logMu.Lock()
	logged := strings.Count(logs.String(), "hook request failed")
	logMu.Unlock()
	if logged < 1 || logged > 3 { // 9 failures within about a second
		t.Fatalf("logged %d failures of 9, want one a second:\n%s", logged, logs.String())
	}

	mode.Store("ok")
	c := heraldtest.DialWelcome(t, srv.url, nil)
	c.Send(t, `{"type":"subscribe","id":1,"channel":"down:a"}`)
	c.ExpectError(t, "unavailable", 1)
	c.Send(t, `{"type":"publish","id":2,"channel":"down:a","data":1}`)
	c.ExpectError(t, "unavailable", 2)
	if n := hookErrors("publish", "unreachable"); n != 1 {
		t.Fatalf("hook_errors_total{publish,unreachable} = %v, want 1", n)
	}
	c.Subscribe(t, 3, "ok", nil) // the server is healthy
	if pos, err := srv.Publish(t.Context(), "down:a", []byte("1"), nil); err != nil || pos.Offset != 1 {
		t.Fatalf("the failed publish published something: %v %v", pos, err)
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func hookErrorCount(t *testing.T, reg *prometheus.Registry, hook, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "herald_hook_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["hook"] == hook && l["reason"] == reason {
				return m.Counter.GetValue()
			}
		}
	}
	return 0
}

func TestSubscribeHook(t *testing.T) {
	b := newBackend(t, func(hook string, body map[string]any) string {
		switch {
		case hook == "connect":
			return `{"user":"alice","channels":["user:alice"]}`
		case body["channel"] == "secret":
			return `{"error":{"code":"forbidden","message":"not in this room"}}`
		case body["channel"] == "kick":
			return `{"disconnect":{"code":4502,"reason":"banned"}}`
		}
		return `{}`
	})
	srv := startServer(t, &herald.Options{Hooks: b.hooks()})
	c := heraldtest.MustDial(t, srv.url, nil)
	sid := c.Expect(t, "welcome").Fields()["session"].(string)
	c.Expect(t, "subscribed")
	c.Subscribe(t, 1, "room", nil)
	c.Send(t, `{"type":"subscribe","id":2,"channel":"secret"}`)
	if e := c.ExpectError(t, "forbidden", 2); e.Message != "not in this room" {
		t.Fatalf("error %s, want the backend's message", e)
	}
	// The connect hook's channel needs no subscribe hook, with since too.
	c.Send(t, `{"type":"subscribe","id":3,"channel":"user:alice","since":{"epoch":"x","offset":0}}`)
	c.Expect(t, "subscribed")
	got := b.received(t, "subscribe")
	want := []string{
		`{"client":"` + sid + `","user":"alice","channel":"room"}`,
		`{"client":"` + sid + `","user":"alice","channel":"secret"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("subscribe requests\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	c.Send(t, `{"type":"subscribe","id":4,"channel":"kick"}`)
	if code := c.ExpectClose(t, 5*time.Second); code != 4502 {
		t.Fatalf("close %d, want 4502", code)
	}
}

func TestPublishHook(t *testing.T) {
	b := newBackend(t, func(hook string, body map[string]any) string {
		switch {
		case hook == "connect":
			return `{"user":"bob"}`
		case hook != "publish":
			return `{}`
		case body["channel"] == "rewrite":
			return `{"data":{"text":"[censored]"}}`
		case body["channel"] == "refuse":
			return `{"error":{"code":"forbidden","message":"read only"}}`
		}
		return `{}`
	})
	srv := startServer(t, &herald.Options{Hooks: b.hooks()})
	sub := heraldtest.MustDial(t, srv.url, nil)
	sub.Expect(t, "welcome")
	for i, ch := range []string{"plain", "rewrite", "refuse"} {
		sub.Subscribe(t, uint64(i+1), ch, nil)
	}
	c := heraldtest.MustDial(t, srv.url, nil)
	sid := c.Expect(t, "welcome").Fields()["session"].(string)
	c.Send(t, `{"type":"publish","id":1,"channel":"refuse","data":{"text":"hi"}}`)
	c.ExpectError(t, "forbidden", 1)
	c.Send(t, `{"type":"publish","id":2,"channel":"rewrite","data":{"text":"darn"}}`)
	c.Expect(t, "published")
	c.Send(t, `{"type":"publish","id":3,"channel":"plain","data":{"text":"hi"}}`)
	c.Expect(t, "published")
	if m := sub.Expect(t, "message"); m.Channel != "rewrite" || string(m.Data) != `{"text":"[censored]"}` {
		t.Fatalf("got %s, want the backend's data on rewrite", m)
	}
	if m := sub.Expect(t, "message"); m.Channel != "plain" || string(m.Data) != `{"text":"hi"}` {
		t.Fatalf("got %s, want the client's data on plain (nothing on refuse)", m)
	}
	got := strings.Join(b.received(t, "publish"), "\n")
	want := strings.Join([]string{
		`{"client":"` + sid + `","user":"bob","channel":"refuse","data":{"text":"hi"}}`,
		`{"client":"` + sid + `","user":"bob","channel":"rewrite","data":{"text":"darn"}}`,
		`{"client":"` + sid + `","user":"bob","channel":"plain","data":{"text":"hi"}}`,
	}, "\n")
	if got != want {
		t.Fatalf("publish requests\n%s\nwant\n%s", got, want)
	}
	// The HTTP API and Server.Publish do not ask the hook.
	if _, err := srv.Publish(t.Context(), "refuse", []byte(`1`), nil); err != nil {
		t.Fatal(err)
	}
	if n := len(b.received(t, "publish")); n != 3 {
		t.Fatalf("Server.Publish called the publish hook (%d calls)", n)
	}
}

func TestRPC(t *testing.T) {
	b := newBackend(t, func(hook string, body map[string]any) string {
		switch {
		case hook == "connect":
			return `{"user":"ann","info":{"plan":"pro"}}`
		case body["method"] == "fail":
			return `{"error":{"code":"bad_request","message":"no such profile"}}`
		case body["method"] == "bye":
			return `{"disconnect":{"code":4000,"reason":"reconnect"}}`
		}
		return `{"data":{"name":"Ann","got":` + mustJSON(body["data"]) + `}}`
	})
	srv := startServer(t, &herald.Options{Hooks: b.hooks()})
	c := heraldtest.MustDial(t, srv.url, nil)
	sid := c.Expect(t, "welcome").Fields()["session"].(string)
	c.Send(t, `{"type":"rpc","id":7,"method":"getProfile","data":{"id":42}}`)
	r := c.Expect(t, "result")
	if r.ID != 7 || string(r.Data) != `{"name":"Ann","got":{"id":42}}` {
		t.Fatalf("result %s", r)
	}
	if got, want := b.received(t, "rpc")[0], `{"client":"`+sid+`","user":"ann","info":{"plan":"pro"},"method":"getProfile","data":{"id":42}}`; got != want {
		t.Fatalf("rpc request\n%s\nwant\n%s", got, want)
	}
	c.Send(t, `{"type":"rpc","id":8,"method":"fail"}`)
	c.ExpectError(t, "bad_request", 8)
	for i, m := range []string{`""`, `"a b"`, `"` + strings.Repeat("m", 129) + `"`, `"é"`} {
		c.Send(t, `{"type":"rpc","id":`+mustJSON(i+10)+`,"method":`+m+`}`)
		c.ExpectError(t, "bad_request", uint64(i+10))
	}
	c.Send(t, `{"type":"rpc","id":20,"method":"A-z_0.9:/`+strings.Repeat("m", 119)+`"}`)
	c.Expect(t, "result")
	if n := len(b.received(t, "rpc")); n != 3 {
		t.Fatalf("backend got %d rpc requests, want 3 (invalid methods never reach it)", n)
	}
	c.Send(t, `{"type":"rpc","id":21,"method":"bye"}`)
	if code := c.ExpectClose(t, 5*time.Second); code != 4000 {
		t.Fatalf("close %d, want 4000", code)
	}

	plain := startServer(t, nil)
	p := heraldtest.DialWelcome(t, plain.url, nil)
	p.Send(t, `{"type":"rpc","id":1,"method":"x"}`)
	if e := p.ExpectError(t, "bad_request", 1); e.Message != "rpc is not configured" {
		t.Fatalf("error %s", e)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestRPCRateLimited: each rpc takes a token of the request rate limit.
func TestRPCRateLimited(t *testing.T) {
	b := newBackend(t, func(string, map[string]any) string { return `{"data":1}` })
	srv := startServer(t, &herald.Options{Rate: 1, Burst: 2, Hooks: &herald.HookOptions{RPC: b.URL + "/rpc"}})
	c := heraldtest.DialWelcome(t, srv.url, nil)
	for id := 1; id <= 3; id++ {
		c.Send(t, `{"type":"rpc","id":`+mustJSON(id)+`,"method":"m"}`)
	}
	c.Expect(t, "result")
	c.Expect(t, "result")
	c.ExpectError(t, "rate_limited", 3)
}

// TestHookConcurrency: no more requests than Concurrency are in flight to
// one hook; the others wait for a slot and are served, over no more
// connections than slots.
func TestHookConcurrency(t *testing.T) {
	var inFlight, most, conns atomic.Int64
	b := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(30 * time.Millisecond)
		io.WriteString(w, `{"user":"u"}`)
	}))
	b.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	b.Start()
	defer b.Close()
	srv := startServer(t, &herald.Options{Hooks: &herald.HookOptions{Connect: b.URL, Concurrency: 3}})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := heraldtest.Dial(context.Background(), srv.url, nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if f, err := c.Next(heraldtest.Timeout); err != nil || f.Type != "welcome" {
				errs <- errors.New("no welcome: " + f.String())
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if m := most.Load(); m != 3 {
		t.Fatalf("at most %d requests in flight, want exactly 3", m)
	}
	if n := conns.Load(); n > 3 {
		t.Fatalf("20 requests opened %d connections to the backend, want at most 3", n)
	}
}

// TestRefreshHook: a connection made through the connect hook asks the
// refresh hook at its expiry and stays open; when that fails it is closed
// with 4001.
func TestRefreshHook(t *testing.T) {
	var refresh atomic.Value
	refresh.Store(`{"expires_at":` + mustJSON(time.Now().Add(time.Hour).Unix()) + `}`)
	b := newBackend(t, func(hook string, body map[string]any) string {
		if hook == "connect" {
			return `{"user":"eve","expires_at":` + mustJSON(time.Now().Add(time.Second).Unix()) + `}`
		}
		return refresh.Load().(string)
	})
	srv := startServer(t, &herald.Options{Hooks: b.hooks(), PingInterval: 100 * time.Millisecond})
	c := heraldtest.MustDial(t, srv.url, nil)
	sid := c.Expect(t, "welcome").Fields()["session"].(string)
	deadline := time.Now().Add(5 * time.Second)
	for len(b.received(t, "refresh")) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := b.received(t, "refresh"); len(got) != 1 || got[0] != `{"client":"`+sid+`","user":"eve"}` {
		t.Fatalf("refresh requests %q", got)
	}
	c.Send(t, `{"type":"ping","id":1}`)
	c.Expect(t, "pong") // still open

	refresh.Store(`{"error":{"code":"unauthorized","message":"session ended"}}`)
	c2 := heraldtest.MustDial(t, srv.url, nil)
	c2.Expect(t, "welcome")
	if code := c2.ExpectClose(t, 5*time.Second); code != 4001 {
		t.Fatalf("close %d, want 4001", code)
	}
}

// TestSubscribeHookSkippedForTokenChannels: a token's channels claim
// already allows its channels; the subscribe hook is asked only without
// one.
func TestSubscribeHookSkippedForTokenChannels(t *testing.T) {
	b := newBackend(t, func(string, map[string]any) string { return `{"error":{"code":"forbidden","message":"no"}}` })
	srv := jwtServer(t, herald.Options{Hooks: &herald.HookOptions{Subscribe: b.URL + "/subscribe", Secret: hookSecret}})
	scoped := heraldtest.DialWelcome(t, srv.url, bearer(token(t, jwt.MapClaims{"sub": "al", "aud": "herald", "channels": []string{"chat:*"}})))
	scoped.Subscribe(t, 1, "chat:a", nil)
	plain := heraldtest.DialWelcome(t, srv.url, bearer(token(t, jwt.MapClaims{"sub": "bo", "aud": "herald"})))
	plain.Send(t, `{"type":"subscribe","id":1,"channel":"chat:a"}`)
	plain.ExpectError(t, "forbidden", 1)
	if got := b.received(t, "subscribe"); len(got) != 1 || !strings.Contains(got[0], `"user":"bo"`) {
		t.Fatalf("subscribe hook requests %q, want only bo's", got)
	}
}
