package doctor_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/doctor"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// heraldNode returns a node, not started, that serves Herald at /ws and a
// page at /, on one port.
func heraldNode(t *testing.T, opts *herald.Options) *testnode.Node {
	n := testnode.New(t, *opts)
	n.Routes = func(mux *http.ServeMux, _ *herald.Server) {
		mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page\n") })
	}
	return n
}

// startHerald serves Herald like heraldNode and returns the ws:// URL.
func startHerald(t *testing.T, opts *herald.Options) string {
	t.Helper()
	n := heraldNode(t, opts)
	n.Start()
	return n.URL()
}

func check(t *testing.T, rep doctor.Report, name string) doctor.Check {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s check in %+v", name, rep)
	return doctor.Check{}
}

func logReport(t *testing.T, rep doctor.Report) {
	t.Helper()
	for _, c := range rep.Checks {
		t.Logf("%-4s %-10s %s", c.Status, c.Name, c.Summary)
		if c.Hint != "" {
			t.Logf("     hint: %s", c.Hint)
		}
	}
}

func TestDoctorHeraldPassesEveryCheck(t *testing.T) {
	url := startHerald(t, &herald.Options{PingInterval: 200 * time.Millisecond, PongTimeout: 200 * time.Millisecond})
	start := time.Now()
	rep := doctor.Run(context.Background(), url, &doctor.Options{Duration: 3 * time.Second, Reconnect: 2})
	logReport(t, rep)
	if !rep.Herald {
		t.Error("Herald endpoint not recognised")
	}
	want := []string{"handshake", "heartbeat", "pong", "dead-peer", "close", "reconnect", "validation", "liveness"}
	if len(rep.Checks) != len(want) {
		t.Fatalf("%d checks, want %d", len(rep.Checks), len(want))
	}
	for i, c := range rep.Checks {
		if c.Name != want[i] {
			t.Errorf("check %d is %s, want %s", i, c.Name, want[i])
		}
		if c.Status != doctor.Pass {
			t.Errorf("%s: %s (%s), want pass", c.Name, c.Status, c.Summary)
		}
		if c.Summary == "" {
			t.Errorf("%s: no summary", c.Name)
		}
	}
	if rep.Failed() {
		t.Error("Failed() with every check passing")
	}
	hb := check(t, rep, "heartbeat")
	if iv, _ := hb.Measured["ping_interval_ms"].(float64); iv < 150 || iv > 350 {
		t.Errorf("measured ping interval %v ms, want about 200", hb.Measured["ping_interval_ms"])
	}
	dp := check(t, rep, "dead-peer")
	if after, _ := dp.Measured["dropped_after_ms"].(float64); after < 350 || after > 1000 {
		t.Errorf("dead peer dropped after %v ms, want about 400 (interval + timeout)", dp.Measured["dropped_after_ms"])
	}
	hs := check(t, rep, "handshake")
	if hs.Measured["subprotocol"] != "herald.v1" || hs.Measured["http_root_status"] != 200 || hs.Measured["http_path_status"] != 426 {
		t.Errorf("handshake measured %v", hs.Measured)
	}
	if !strings.Contains(check(t, rep, "reconnect").Summary, "recovered true 2/2") {
		t.Error("reconnect summary does not report recovery")
	}
	if took := time.Since(start); took > 3*time.Second+time.Second {
		t.Errorf("run took %v, over its 3 s budget", took)
	}
}

// TestDoctorReportsEachFlaw runs the doctor against servers with one flaw
// each; the flaw must fail the check that looks for it, with a hint that
// names the problem, and leave the other checks alone.
func TestDoctorReportsEachFlaw(t *testing.T) {
	cases := []struct {
		name   string
		server *badServer
		idle   time.Duration
		fail   map[string]string // check -> words its hint must hold
	}{
		{
			// No ping in 3 s, three times the idle timeout.
			name:   "no pings",
			server: &badServer{},
			idle:   time.Second,
			fail: map[string]string{
				"heartbeat": "sends no WebSocket ping frames",
				"dead-peer": "sent no ping",
			},
		},
		{
			name:   "never drops dead peers",
			server: &badServer{pingEvery: 200 * time.Millisecond},
			fail:   map[string]string{"dead-peer": "client has vanished"},
		},
		{
			name:   "crashes on bad JSON",
			server: &badServer{pingEvery: 200 * time.Millisecond, deadAfter: 600 * time.Millisecond, crashOnBadJSON: true},
			fail:   map[string]string{"validation": "crash"},
		},
		{
			// 120 s between pings against a 60 s proxy timeout, scaled by 1/100.
			name:   "pings every 120 s",
			server: &badServer{pingEvery: 1200 * time.Millisecond, deadAfter: 1600 * time.Millisecond},
			idle:   600 * time.Millisecond,
			fail:   map[string]string{"heartbeat": "close sockets idle for 600ms"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := startBadServer(t, tc.server)
			rep := doctor.Run(context.Background(), url, &doctor.Options{Duration: 3 * time.Second, IdleTimeout: tc.idle, Reconnect: 1})
			logReport(t, rep)
			if rep.Herald {
				t.Error("echo server taken for Herald")
			}
			if !rep.Failed() {
				t.Error("Failed() is false")
			}
			for _, c := range rep.Checks {
				words, want := tc.fail[c.Name]
				switch {
				case want && c.Status != doctor.Fail:
					t.Errorf("%s: %s, want fail", c.Name, c.Status)
				case want && !strings.Contains(c.Hint, words):
					t.Errorf("%s hint %q does not say %q", c.Name, c.Hint, words)
				case !want && c.Status != doctor.Pass:
					t.Errorf("%s: %s (%s), want pass", c.Name, c.Status, c.Summary)
				}
			}
		})
	}
}

func TestDoctorSlowPingsMeasured(t *testing.T) {
	t.Parallel()
	url := startBadServer(t, &badServer{pingEvery: 1200 * time.Millisecond, deadAfter: 1600 * time.Millisecond})
	rep := doctor.Run(context.Background(), url, &doctor.Options{Duration: 3 * time.Second, IdleTimeout: 600 * time.Millisecond})
	hb := check(t, rep, "heartbeat")
	first, _ := hb.Measured["first_ping_ms"].(float64)
	if first < 1100 || first > 1500 {
		t.Errorf("first ping after %v ms, want about 1200", hb.Measured["first_ping_ms"])
	}
	if !strings.Contains(hb.Summary, "longest silence") {
		t.Errorf("summary %q does not say how long the server was silent", hb.Summary)
	}
}

func TestDoctorShortRunDoesNotConclude(t *testing.T) {
	url := startHerald(t, &herald.Options{PingInterval: 5 * time.Second, PongTimeout: 5 * time.Second})
	rep := doctor.Run(context.Background(), url, &doctor.Options{Duration: time.Second})
	logReport(t, rep)
	for _, name := range []string{"heartbeat", "dead-peer"} {
		c := check(t, rep, name)
		if c.Status != doctor.Inconclusive || !strings.Contains(c.Hint, "--duration of at least 15.0s") {
			t.Errorf("%s: %s, hint %q; want not concluded, and a hint to run for 15 s", name, c.Status, c.Hint)
		}
	}
	if rep.Failed() {
		t.Error("a run too short to measure failed the server")
	}
}

func TestDoctorHandshakeFailures(t *testing.T) {
	url := startHerald(t, &herald.Options{PingInterval: time.Second})
	rep := doctor.Run(context.Background(), url, &doctor.Options{Duration: time.Second, Subprotocols: []string{"other.v2"}})
	hs := check(t, rep, "handshake")
	if hs.Status != doctor.Fail || hs.Measured["status"] != 400 || !strings.Contains(hs.Hint, "--subprotocol") {
		t.Errorf("refused subprotocol: %+v", hs)
	}
	for _, c := range rep.Checks[1:] {
		if c.Status != doctor.Skip {
			t.Errorf("%s ran after a failed handshake: %s", c.Name, c.Status)
		}
	}

	rep = doctor.Run(context.Background(), strings.TrimSuffix(url, "/ws")+"/page", &doctor.Options{Duration: time.Second})
	if hs := check(t, rep, "handshake"); hs.Status != doctor.Fail || hs.Measured["status"] != 200 || !strings.Contains(hs.Hint, "ordinary page") {
		t.Errorf("URL of a page: %+v", hs)
	}

	rep = doctor.Run(context.Background(), url, &doctor.Options{Duration: 2 * time.Second, Subprotocols: []string{}})
	if !rep.Herald || check(t, rep, "handshake").Status != doctor.Pass {
		t.Errorf("no subprotocol offered: Herald %v, handshake %+v", rep.Herald, check(t, rep, "handshake"))
	}
}

func TestDoctorStopsWhenInterrupted(t *testing.T) {
	url := startHerald(t, &herald.Options{PingInterval: 20 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep := doctor.Run(ctx, url, &doctor.Options{Duration: 60 * time.Second})
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Run returned %v after the context ended", took)
	}
	if c := check(t, rep, "dead-peer"); c.Status != doctor.Skip {
		t.Errorf("dead-peer after interrupt: %s %s", c.Status, c.Summary)
	}
}

func TestDoctorOverTLS(t *testing.T) {
	n := heraldNode(t, &herald.Options{PingInterval: 200 * time.Millisecond, PongTimeout: 200 * time.Millisecond})
	n.TLS = &tls.Config{}
	n.Start()
	url := n.URL()

	rep := doctor.Run(context.Background(), url, &doctor.Options{Duration: 2 * time.Second})
	if hs := check(t, rep, "handshake"); hs.Status != doctor.Fail || !strings.Contains(hs.Hint, "--ca-file") {
		t.Errorf("untrusted certificate: %+v", hs)
	}

	roots := x509.NewCertPool()
	roots.AddCert(n.Certificate())
	rep = doctor.Run(context.Background(), url, &doctor.Options{Duration: 2 * time.Second, TLSConfig: &tls.Config{RootCAs: roots}})
	logReport(t, rep)
	if rep.Failed() || !rep.Herald {
		t.Errorf("wss with the server's CA: failed %v, Herald %v", rep.Failed(), rep.Herald)
	}
}

// TestDoctorReadsCompressedWelcome offers permessage-deflate like a browser
// and reads a welcome the server compressed.
func TestDoctorReadsCompressedWelcome(t *testing.T) {
	done := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ext := wsflate.Extension{Parameters: wsflate.DefaultParameters}
		u := ws.HTTPUpgrader{Negotiate: ext.Negotiate}
		conn, _, _, err := u.Upgrade(r, w)
		if err != nil {
			return
		}
		defer conn.Close()
		f := ws.NewTextFrame([]byte(`{"type":"welcome","session":"s_1","ping_interval_ms":200,"pong_timeout_ms":200}`))
		if _, ok := ext.Accepted(); ok {
			f, _ = wsflate.CompressFrame(f)
		}
		ws.WriteFrame(conn, f)
		go func() { <-done; conn.Close() }()
		io.Copy(io.Discard, conn)
	}))
	t.Cleanup(func() {
		close(done)
		hs.Close()
	})
	rep := doctor.Run(context.Background(), "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws", &doctor.Options{Duration: 200 * time.Millisecond, Timeout: 200 * time.Millisecond})
	c := check(t, rep, "handshake")
	if !strings.Contains(c.Summary, "extensions permessage-deflate; server_no_context_takeover; client_no_context_takeover, welcome in") || c.Measured["ping_interval_ms"] != int64(200) || !rep.Herald {
		t.Errorf("handshake: %+v", c)
	}
}

func TestDoctorWarnsNearTheIdleTimeout(t *testing.T) {
	t.Parallel()
	// 54 s between pings against a 60 s proxy timeout, scaled by 1/100.
	url := startBadServer(t, &badServer{pingEvery: 540 * time.Millisecond, deadAfter: 900 * time.Millisecond})
	rep := doctor.Run(context.Background(), url, &doctor.Options{Duration: 2500 * time.Millisecond, IdleTimeout: 600 * time.Millisecond})
	hb := check(t, rep, "heartbeat")
	if hb.Status != doctor.Warn || !strings.Contains(hb.Hint, "close to the 600ms idle timeout") {
		t.Errorf("heartbeat: %+v", hb)
	}
	if rep.Failed() {
		logReport(t, rep)
		t.Error("a warning failed the run")
	}
}

// TestDoctorReportsLostRecovery sends every connection to the other of two
// Herald servers, each with its own memory broker, like a restart that lost
// the streams: subscribe with since cannot recover.
func TestDoctorReportsLostRecovery(t *testing.T) {
	t.Parallel()
	opts := &herald.Options{PingInterval: 200 * time.Millisecond, PongTimeout: 200 * time.Millisecond}
	servers := []*herald.Server{herald.New(opts), herald.New(opts)}
	var n atomic.Int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		servers[n.Add(1)%2].ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		hs.Close()
		servers[0].Close()
		servers[1].Close()
	})
	rep := doctor.Run(context.Background(), "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws", &doctor.Options{Duration: 3 * time.Second, Reconnect: 2})
	logReport(t, rep)
	rc := check(t, rep, "reconnect")
	if rc.Status != doctor.Fail || !strings.Contains(rc.Summary, "recovered false") || !strings.Contains(rc.Hint, "epoch changed") {
		t.Errorf("reconnect: %+v", rc)
	}
	if !strings.Contains(rc.Summary, "welcome 2/2") {
		t.Errorf("reconnect summary %q does not count the welcomes", rc.Summary)
	}
}

// TestDoctorHeraldWithCompression: against a Herald server with
// compression on, every check passes and the handshake reports the
// negotiated extension and its parameters.
func TestDoctorHeraldWithCompression(t *testing.T) {
	url := startHerald(t, &herald.Options{Compression: true, PingInterval: 200 * time.Millisecond, PongTimeout: 200 * time.Millisecond})
	rep := doctor.Run(context.Background(), url, &doctor.Options{Duration: 2 * time.Second, Reconnect: 1})
	logReport(t, rep)
	for _, c := range rep.Checks {
		if c.Status != doctor.Pass {
			t.Errorf("%s: %s (%s), want pass", c.Name, c.Status, c.Summary)
		}
	}
	hs := check(t, rep, "handshake")
	if !strings.Contains(hs.Summary, "extensions permessage-deflate; server_no_context_takeover; client_no_context_takeover,") {
		t.Errorf("handshake summary %q does not report the extension", hs.Summary)
	}
}
