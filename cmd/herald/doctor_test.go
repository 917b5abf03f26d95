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
	"testing"
	"time"

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
	if len(lines) != 9 || !strings.HasPrefix(lines[0], "herald doctor "+url) {
		t.Fatalf("output:\n%s", out)
	}
	for i, name := range []string{"handshake", "heartbeat", "pong", "dead-peer", "validation", "close", "reconnect"} {
		if f := strings.Fields(lines[i+1]); len(f) < 3 || f[0] != "PASS" || f[1] != name {
			t.Errorf("line %d: %q, want PASS %s ...", i+1, lines[i+1], name)
		}
	}
	if !strings.HasPrefix(lines[8], "Herald endpoint; 7 passed, 0 warnings, 0 failed") {
		t.Errorf("tally: %q", lines[8])
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
	if rep.URL != url || !rep.Herald || len(rep.Checks) != 6 || rep.Failed() {
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
	if !strings.Contains(errOut, "1 of 6 checks failed") {
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
