package herald_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// apiServer serves the WebSocket and the API of one server.
type apiServer struct {
	*testServer
	api string // base URL
}

func startAPIServer(t *testing.T, o herald.Options) *apiServer {
	t.Helper()
	srv := herald.New(&o)
	mux := http.NewServeMux()
	mux.Handle("GET /ws", srv)
	mux.Handle("/api/", srv.APIHandler())
	mux.Handle("GET /readyz", srv.ReadyHandler())
	mux.Handle("GET /metrics", srv.MetricsHandler())
	hs := httptest.NewServer(mux)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return &apiServer{&testServer{Server: srv, http: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"}, hs.URL}
}

// call sends an API request and returns the status and decoded JSON body.
func call(t *testing.T, method, url, key, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(data, &m)
	return resp.StatusCode, m
}

func TestAPIPublish(t *testing.T) {
	srv := startAPIServer(t, herald.Options{APIKey: "k3y", MaxMessageBytes: 1024})
	sub := heraldtest.DialWelcome(t, srv.url, nil)
	sub.Send(t, `{"type":"subscribe","id":1,"channel":"chat"}`)
	sub.Expect(t, "subscribed")

	status, body := call(t, "POST", srv.api+"/api/publish", "k3y", `{"channel":"chat","data":{"text":"from the backend"},"key":"b-1"}`)
	if status != 200 || body["offset"] != 1.0 {
		t.Fatalf("publish: %d %v", status, body)
	}
	if m := sub.Expect(t, "message").Fields(); m["offset"] != 1.0 || m["data"].(map[string]any)["text"] != "from the backend" {
		t.Fatalf("message = %v", m)
	}
	// The API's keys are its own: a WebSocket client cannot take them.
	pub := heraldtest.DialWelcome(t, srv.url, nil)
	pub.Send(t, `{"type":"publish","id":1,"channel":"chat","data":"mine","key":"b-1"}`)
	if p := pub.Expect(t, "published").Fields(); p["offset"] != 2.0 {
		t.Fatalf("WebSocket publish with the API's key: %v, want a publication of its own", p)
	}
	if m := sub.Expect(t, "message").Fields(); m["offset"] != 2.0 || m["data"] != "mine" {
		t.Fatalf("message = %v", m)
	}

	cases := []struct {
		name, key, body string
		status          int
		code            string
	}{
		{"no key", "", `{"channel":"chat","data":1}`, 401, "unauthorized"},
		{"wrong key", "nope", `{"channel":"chat","data":1}`, 401, "unauthorized"},
		{"bad JSON", "k3y", `{"channel":`, 400, "bad_request"},
		{"not an object", "k3y", `[1]`, 400, "bad_request"},
		{"missing channel", "k3y", `{"data":1}`, 400, "bad_request"},
		{"missing data", "k3y", `{"channel":"chat"}`, 400, "bad_request"},
		{"ill-typed channel", "k3y", `{"channel":5,"data":1}`, 400, "bad_request"},
		{"bad channel", "k3y", `{"channel":"no spaces","data":1}`, 400, "invalid_channel"},
		{"oversize body", "k3y", `{"channel":"chat","data":"` + strings.Repeat("x", 2000) + `"}`, 413, "bad_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, "POST", srv.api+"/api/publish", tc.key, tc.body)
			if status != tc.status || body["code"] != tc.code || body["message"] == "" {
				t.Fatalf("got %d %v, want %d %s", status, body, tc.status, tc.code)
			}
		})
	}
	// Nothing the refused calls sent was published.
	sub.Send(t, `{"type":"ping","id":2}`)
	sub.Expect(t, "pong")
}

func TestAPIOffWithoutKey(t *testing.T) {
	srv := startAPIServer(t, herald.Options{})
	status, _ := call(t, "POST", srv.api+"/api/publish", "", `{"channel":"chat","data":1}`)
	if status != 404 {
		t.Fatalf("status %d, want 404 with the API off", status)
	}
}

func TestAPIBroadcastChannelsDisconnect(t *testing.T) {
	srv := startAPIServer(t, herald.Options{APIKey: "k", Tokens: mustJWT(t)})
	alice := heraldtest.DialWelcome(t, srv.url, bearer(token(t, jwt.MapClaims{"sub": "alice"})))
	for i, ch := range []string{"a", "b"} {
		alice.Send(t, fmt.Sprintf(`{"type":"subscribe","id":%d,"channel":%q}`, i+1, ch))
		alice.Expect(t, "subscribed")
	}

	status, body := call(t, "POST", srv.api+"/api/broadcast", "k", `{"channels":["a","b"],"data":"all"}`)
	results, _ := body["results"].([]any)
	if status != 200 || len(results) != 2 {
		t.Fatalf("broadcast: %d %v", status, body)
	}
	for range 2 {
		if m := alice.Expect(t, "message").Fields(); m["data"] != "all" {
			t.Fatalf("message = %v", m)
		}
	}
	status, body = call(t, "POST", srv.api+"/api/broadcast", "k", `{"channels":["a","bad channel"],"data":1}`)
	if status != 400 || body["code"] != "invalid_channel" {
		t.Fatalf("broadcast with a bad channel: %d %v", status, body)
	}

	status, body = call(t, "GET", srv.api+"/api/channels", "k", "")
	if status != 200 || len(body["channels"].([]any)) != 2 ||
		body["channels"].([]any)[0].(map[string]any)["subscribers"] != 1.0 {
		t.Fatalf("channels: %d %v", status, body)
	}

	status, body = call(t, "POST", srv.api+"/api/disconnect", "k", `{"user":"alice","code":4403,"reason":"banned"}`)
	if status != 200 || body["disconnected"] != 1.0 {
		t.Fatalf("disconnect: %d %v", status, body)
	}
	if code := alice.ExpectClose(t, 5*time.Second); code != 4403 {
		t.Fatalf("close %d, want 4403", code)
	}
	status, body = call(t, "POST", srv.api+"/api/disconnect", "k", `{"user":"alice","code":1006}`)
	if status != 400 || body["code"] != "bad_request" {
		t.Fatalf("disconnect with code 1006: %d %v", status, body)
	}
}

func mustJWT(t *testing.T) *auth.JWT {
	t.Helper()
	v, err := auth.NewJWT(auth.JWTOptions{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// flakyBroker is a memory broker whose reachability the test switches, to
// drive the server's readiness and unavailable answers.
type flakyBroker struct {
	*broker.Memory
	down atomic.Bool
}

func (b *flakyBroker) Check(ctx context.Context) error {
	if b.down.Load() {
		return broker.ErrUnavailable
	}
	return b.Memory.Check(ctx)
}

func (b *flakyBroker) Publish(ctx context.Context, ch string, data []byte, o broker.PublishOptions) (broker.StreamPosition, error) {
	if b.down.Load() {
		return broker.StreamPosition{}, broker.ErrUnavailable
	}
	return b.Memory.Publish(ctx, ch, data, o)
}

func TestReadinessFollowsBroker(t *testing.T) {
	b := &flakyBroker{Memory: broker.NewMemory(nil)}
	defer b.Close()
	srv := startAPIServer(t, herald.Options{Broker: b, APIKey: "k"})
	ready := func() int {
		resp, err := http.Get(srv.api + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	c := heraldtest.DialWelcome(t, srv.url, nil)
	if s := ready(); s != 200 {
		t.Fatalf("readyz %d with the broker up", s)
	}
	b.down.Store(true)
	if s := ready(); s != 503 {
		t.Fatalf("readyz %d with the broker down", s)
	}
	c.Send(t, `{"type":"publish","id":1,"channel":"x","data":1}`)
	c.ExpectError(t, "unavailable", 1)
	if status, body := call(t, "POST", srv.api+"/api/publish", "k", `{"channel":"x","data":1}`); status != 503 || body["code"] != "unavailable" {
		t.Fatalf("API publish with the broker down: %d %v", status, body)
	}
	b.down.Store(false)
	if s := ready(); s != 200 {
		t.Fatalf("readyz %d once the broker is back", s)
	}
	c.Send(t, `{"type":"publish","id":2,"channel":"x","data":1}`)
	c.Expect(t, "published") // the connection stayed open throughout
	srv.Shutdown(t.Context())
	if s := ready(); s != 503 {
		t.Fatalf("readyz %d while shutting down", s)
	}
}

func TestMetricsAfterScriptedSession(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := startAPIServer(t, herald.Options{Registry: reg, PingInterval: 300 * time.Millisecond, PongTimeout: 300 * time.Millisecond, SendQueueBytes: 1 << 20})
	value := func(name string, labels ...string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				match := true
				for i := 0; i+1 < len(labels); i += 2 {
					found := false
					for _, lp := range m.GetLabel() {
						found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
					}
					match = match && found
				}
				if !match {
					continue
				}
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				case m.Histogram != nil:
					return float64(m.Histogram.GetSampleCount())
				}
			}
		}
		return 0
	}

	// A peer that never answers is terminated by the heartbeat; the rest of
	// the session runs well within one heartbeat period.
	dead := heraldtest.DialWelcome(t, srv.url, nil)
	dead.IgnorePings = true
	dead.ExpectDropped(t, 5*time.Second)

	subs := make([]*heraldtest.Conn, 3)
	for i := range subs {
		subs[i] = heraldtest.DialWelcome(t, srv.url, nil)
		subs[i].Send(t, `{"type":"subscribe","id":1,"channel":"m"}`)
		subs[i].Expect(t, "subscribed")
	}
	pub := heraldtest.DialWelcome(t, srv.url, nil)
	for range 4 {
		pub.Send(t, `{"type":"publish","id":1,"channel":"m","data":1}`)
		pub.Expect(t, "published")
	}
	for _, c := range subs {
		for range 4 {
			c.Expect(t, "message")
		}
	}
	pub.Send(t, `not json`)
	pub.ExpectError(t, "bad_request", 0)
	subs[0].Send(t, `{"type":"subscribe","id":2,"channel":"m","since":{"epoch":"wrong","offset":1}}`)
	subs[0].Expect(t, "subscribed")
	subs[2].MustWriteFrame(t, ws.OpClose, true, ws.NewCloseFrameBody(1000, ""))
	subs[2].ExpectClose(t, 5*time.Second)
	waitFor(t, "connections to settle", func() bool { return value("herald_connections") == 3 })

	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"herald_connections_opened_total", nil, 5},
		{"herald_connections", nil, 3},
		{"herald_connections_closed_total", []string{"code", "1000"}, 1},
		{"herald_connections_closed_total", []string{"code", "1006"}, 1},
		{"herald_heartbeat_terminations_total", nil, 1},
		{"herald_subscriptions", nil, 2},
		{"herald_messages_delivered_total", nil, 12},
		{"herald_publish_duration_seconds", nil, 4},
		{"herald_fanout_duration_seconds", nil, 4},
		{"herald_errors_total", []string{"code", "bad_request"}, 1},
		{"herald_recoveries_total", []string{"recovered", "false"}, 1},
		{"herald_messages_received_total", nil, 3 + 4 + 1 + 1},
		{"herald_channels", nil, 1},
	}
	for _, c := range checks {
		if got := value(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := value("herald_history_bytes"); got < 4 {
		t.Errorf("herald_history_bytes = %v, want at least the 4 bytes published", got)
	}
	// Answer the next server ping: its round trip is recorded.
	for value("herald_ping_rtt_seconds") == 0 {
		h, payload, err := subs[0].ReadFrame(5 * time.Second)
		if err != nil {
			t.Fatalf("waiting for a ping: %v", err)
		}
		if h.OpCode == ws.OpPing {
			subs[0].MustWriteFrame(t, ws.OpPong, true, payload)
			waitFor(t, "the round trip to be recorded", func() bool { return value("herald_ping_rtt_seconds") == 1 })
		}
	}
	resp, err := http.Get(srv.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(text), "herald_messages_delivered_total 12") {
		t.Errorf("/metrics does not show the delivered count:\n%.500s", text)
	}
}

func TestTooManyChannels(t *testing.T) {
	b := broker.NewMemory(&broker.MemoryOptions{MaxChannels: 1})
	defer b.Close()
	srv := startAPIServer(t, herald.Options{Broker: b, APIKey: "k"})
	c := heraldtest.DialWelcome(t, srv.url, nil)
	c.Send(t, `{"type":"subscribe","id":1,"channel":"a"}`)
	c.Expect(t, "subscribed")
	// More refusals than the bad requests that close a connection: the
	// server's bound is not the client's fault.
	for id := range uint64(25) {
		c.Send(t, fmt.Sprintf(`{"type":"publish","id":%d,"channel":"b","data":1}`, id+2))
		c.ExpectError(t, "limit_exceeded", id+2)
	}
	c.Send(t, `{"type":"subscribe","id":30,"channel":"b"}`)
	c.ExpectError(t, "limit_exceeded", 30)
	if status, body := call(t, "POST", srv.api+"/api/publish", "k", `{"channel":"b","data":1}`); status != 429 || body["code"] != "limit_exceeded" {
		t.Errorf("API publish to a channel over the bound: %d %v", status, body)
	}
	if status, body := call(t, "POST", srv.api+"/api/publish", "k", `{"channel":"a","data":1}`); status != 200 {
		t.Fatalf("API publish to a: %d %v", status, body)
	}
	c.Expect(t, "message") // the connection stayed open
}
