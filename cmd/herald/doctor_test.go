package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/doctor"
)

// heraldURL serves Herald with a 200 ms heartbeat in the test process and
// returns its ws:// URL.
func heraldURL(t *testing.T) string {
	t.Helper()
	srv := herald.New(&herald.Options{PingInterval: 200 * time.Millisecond, PongTimeout: 200 * time.Millisecond})
	mux := http.NewServeMux()
	mux.Handle("GET /ws", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
}

func runDoctorCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	code = run(context.Background(), stdio{in: strings.NewReader(""), out: &out, err: &errOut}, append([]string{"doctor"}, args...))
	return code, out.String(), errOut.String()
}

func TestDoctorCommandAgainstHerald(t *testing.T) {
	url := heraldURL(t)
	code, out, errOut := runDoctorCmd(t, url, "--duration", "3s", "--reconnect", "1")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 10 || !strings.HasPrefix(lines[0], "herald doctor "+url) {
		t.Fatalf("output:\n%s", out)
	}
	for i, name := range []string{"handshake", "heartbeat", "pong", "dead-peer", "close", "reconnect", "validation", "liveness"} {
		if f := strings.Fields(lines[i+1]); len(f) < 3 || f[0] != "PASS" || f[1] != name {
			t.Errorf("line %d: %q, want PASS %s ...", i+1, lines[i+1], name)
		}
	}
	if !strings.HasPrefix(lines[9], "Herald endpoint; 8 passed, 0 warnings, 0 failed, 0 not concluded") {
		t.Errorf("tally: %q", lines[9])
	}
}

func TestDoctorCommandJSON(t *testing.T) {
	url := heraldURL(t)
	// The URL may also follow the flags, and http:// means the same address.
	code, out, errOut := runDoctorCmd(t, "--json", "--duration", "3s", "http"+strings.TrimPrefix(url, "ws"))
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var rep doctor.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, out)
	}
	if rep.URL != url || !rep.Herald || len(rep.Checks) != 7 || rep.Failed() {
		t.Errorf("report: %+v", rep)
	}
	if rep.Checks[1].Measured["ping_interval_ms"] == nil {
		t.Errorf("heartbeat measured nothing: %+v", rep.Checks[1])
	}
}

func TestDoctorCommandFailsOnAFailedCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	code, out, errOut := runDoctorCmd(t, "ws://"+addr+"/ws", "--duration", "1s")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(out, "FAIL  handshake") || !strings.Contains(out, "hint: nothing listens") {
		t.Errorf("output:\n%s", out)
	}
	if !strings.Contains(errOut, "1 of 7 checks failed") {
		t.Errorf("stderr: %q", errOut)
	}
}

func TestDoctorCommandLineMistakes(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--duration", "1s"},
		{"ftp://127.0.0.1/ws"},
		{"ws://127.0.0.1:1/ws", "extra"},
		{"ws://127.0.0.1:1/ws", "--duration", "0s"},
		{"ws://127.0.0.1:1/ws", "--no-such-flag"},
	} {
		if code, _, _ := runDoctorCmd(t, args...); code != 2 {
			t.Errorf("doctor %q: exit %d, want 2", args, code)
		}
	}
	var out strings.Builder
	if code := run(context.Background(), stdio{out: &out, err: &out}, []string{"help", "doctor"}); code != 0 {
		t.Fatalf("help doctor: exit %d", code)
	}
	doctorFlags(stdio{out: io.Discard, err: io.Discard}, &doctorConfig{}).VisitAll(func(f *flag.Flag) {
		if !strings.Contains(out.String(), "-"+f.Name) {
			t.Errorf("help doctor does not mention --%s", f.Name)
		}
	})
}

// crashingURL serves a plain WebSocket echo server that pings every 100 ms
// and, like a process killed by an unhandled error, stops listening and
// drops every connection when a client sends a reserved opcode.
func crashingURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
		wg    sync.WaitGroup
		once  sync.Once
	)
	crash := func() {
		once.Do(func() {
			ln.Close()
			mu.Lock()
			defer mu.Unlock()
			for c := range conns {
				c.Close()
			}
		})
	}
	serve := func(c net.Conn) {
		defer c.Close()
		if _, err := ws.Upgrade(c); err != nil {
			return
		}
		var wmu sync.Mutex
		write := func(op ws.OpCode, p []byte) {
			wmu.Lock()
			defer wmu.Unlock()
			ws.WriteFrame(c, ws.NewFrame(op, true, p))
		}
		done := make(chan struct{})
		defer close(done)
		wg.Go(func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					write(ws.OpPing, nil)
				}
			}
		})
		for {
			h, err := ws.ReadHeader(c)
			if err != nil {
				return
			}
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(c, p); err != nil {
				return
			}
			ws.Cipher(p, h.Mask, 0)
			switch h.OpCode {
			case ws.OpPing:
				write(ws.OpPong, p)
			case ws.OpPong:
			case ws.OpClose:
				write(ws.OpClose, p)
				return
			case ws.OpText, ws.OpBinary:
				write(h.OpCode, p)
			default:
				crash()
				return
			}
		}
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() { serve(c) })
		}
	})
	t.Cleanup(func() {
		crash()
		wg.Wait()
	})
	return "ws://" + ln.Addr().String() + "/ws"
}

// TestDoctorCommandReportsACrash checks that the JSON report carries the
// outage as a failed liveness check naming the probe, that the checks that
// ran before it keep their verdicts, and that the exit status is 1.
func TestDoctorCommandReportsACrash(t *testing.T) {
	url := crashingURL(t)
	code, out, errOut := runDoctorCmd(t, url, "--json", "--subprotocol", "", "--duration", "2s", "--idle-timeout", "1s", "--timeout", "1s")
	if code != 1 {
		t.Errorf("exit %d, want 1\n%s", code, errOut)
	}
	var rep doctor.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, out)
	}
	want := map[string]doctor.Status{
		"handshake": doctor.Pass, "heartbeat": doctor.Pass, "pong": doctor.Pass,
		// Pings every 100 ms but never drops a silent peer: the 2 s run
		// saw many unanswered pings.
		"dead-peer": doctor.Fail,
		"close":     doctor.Pass, "validation": doctor.Fail, "liveness": doctor.Fail,
	}
	for _, c := range rep.Checks {
		if c.Status != want[c.Name] {
			t.Errorf("%s: %s (%s), want %s", c.Name, c.Status, c.Summary, want[c.Name])
		}
	}
	live := rep.Checks[len(rep.Checks)-1]
	if !strings.Contains(live.Summary, "stopped accepting connections right after it received a frame with reserved opcode 0x3") ||
		live.Measured["stopped_accepting"] != true || live.Measured["after"] != "it received a frame with reserved opcode 0x3" {
		t.Errorf("liveness: %+v", live)
	}
	if !strings.Contains(errOut, "3 of 7 checks failed") {
		t.Errorf("stderr: %q", errOut)
	}
}
