package doctor_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/doctor"
)

// want is the expected verdict of one check: its status, and words its
// summary (or, after "hint: ", its hint) must hold.
type want struct {
	status doctor.Status
	words  []string
}

func expect(s doctor.Status, words ...string) want { return want{s, words} }

// TestDoctorAgainstOtherStacks runs the doctor against servers the
// project did not write, in the shapes users deploy them, and states the
// report it expects, check by check. Timings are scaled down where the
// case allows: a run watches for a few seconds, not 90.
func TestDoctorAgainstOtherStacks(t *testing.T) {
	const (
		P = doctor.Pass
		W = doctor.Warn
		F = doctor.Fail
		I = doctor.Inconclusive
	)
	crash := []string{"the server stopped accepting connections right after it received a frame with reserved opcode 0x3: an unhandled protocol error may crash the process"}
	crashHint := "hint: add an 'error' listener to every socket"
	none := []string{} // offer no subprotocol, as for a server of another protocol
	cases := []struct {
		name    string
		start   func(t *testing.T) (url string, srv *server)
		opts    doctor.Options
		checks  []string
		want    []want
		crashed bool // the server process must have exited
	}{
		{
			// The server with the 'error' listener added: every
			// check passes, including dead-peer, whose drop comes one
			// interval after the first unanswered ping.
			name:  "ws, 3 s heartbeat, error listener",
			start: func(t *testing.T) (string, *server) { s := startWS(t, 3*time.Second, true); return s.url, s },
			opts:  doctor.Options{Duration: 7 * time.Second, Subprotocols: none},
			want: []want{
				expect(P, "subprotocol none"),
				expect(P, "ping frames every 3.00s"),
				expect(P),
				expect(P, "unanswered pings: 1", "3.00s after the first unanswered ping, with pings every 3.00s"),
				expect(P, "close 1000"),
				expect(P, "invalid JSON -> a reply, connection still open", "reserved opcode 0x3 -> close 1002"),
				expect(P, "after each of the 2 bad-input probes"),
			},
		},
		{
			// The server: a reserved opcode crashes the process.
			// The checks that ran before still stand; the crash is its own
			// finding, naming the probe.
			name:  "ws, 3 s heartbeat, no error listener",
			start: func(t *testing.T) (string, *server) { s := startWS(t, 3*time.Second, false); return s.url, s },
			opts:  doctor.Options{Duration: 7 * time.Second, Subprotocols: none},
			want: []want{
				expect(P),
				expect(P, "ping frames every 3.00s"),
				expect(P),
				expect(P, "3.00s after the first unanswered ping"),
				expect(P, "close 1000"),
				expect(F, "invalid JSON -> a reply, connection still open", "reserved opcode 0x3 -> ", "the server went down with it (see liveness)"),
				expect(F, append(crash, "it dropped every connection it had at the same moment", crashHint)...),
			},
			crashed: true,
		},
		{
			// A 30 s heartbeat cannot be seen in 2 s: heartbeat and
			// dead-peer are not concluded, not failed and not passed. The
			// doctor offers herald.v1, which ws selects without speaking it.
			name:  "ws, 30 s heartbeat, error listener, herald.v1 offered",
			start: func(t *testing.T) (string, *server) { s := startWS(t, 30*time.Second, true); return s.url, s },
			opts:  doctor.Options{Duration: 2 * time.Second},
			want: []want{
				expect(W, "a ping request got echo: not a Herald endpoint, though it selected herald.v1", "hint: the server selected herald.v1 without speaking it"),
				expect(I, "no ping frame in the", "hint: run with --duration of at least 65s"),
				expect(P),
				expect(I, "still open", "unanswered pings: 0", "hint: the run was too short"),
				expect(P, "close 1000"),
				expect(P, "reserved opcode 0x3 -> close 1002"),
				expect(P),
			},
		},
		{
			name:  "ws, 30 s heartbeat, no error listener",
			start: func(t *testing.T) (string, *server) { s := startWS(t, 30*time.Second, false); return s.url, s },
			opts:  doctor.Options{Duration: 2 * time.Second, Subprotocols: none},
			want: []want{
				expect(P),
				expect(I, "no ping frame in the"),
				expect(P),
				expect(I, "still open"),
				expect(P),
				expect(F, "the server went down with it"),
				expect(F, append(crash, crashHint)...),
			},
			crashed: true,
		},
		{
			// No heartbeat at all, judged against a 1 s idle timeout (60 s
			// scaled down) that the 2 s run outlasts.
			name:  "ws, no heartbeat, error listener",
			start: func(t *testing.T) (string, *server) { s := startWS(t, 0, true); return s.url, s },
			opts:  doctor.Options{Duration: 2 * time.Second, IdleTimeout: time.Second, Subprotocols: none},
			want: []want{
				expect(P),
				expect(F, "no ping frame in the", "hint: the server sends no WebSocket ping frames"),
				expect(P),
				expect(F, "still open", "hint: the server sent no ping"),
				expect(P),
				expect(P),
				expect(P),
			},
		},
		{
			name:  "ws, no heartbeat, no error listener",
			start: func(t *testing.T) (string, *server) { s := startWS(t, 0, false); return s.url, s },
			opts:  doctor.Options{Duration: 2 * time.Second, IdleTimeout: time.Second, Subprotocols: none},
			want: []want{
				expect(P),
				expect(F, "hint: the server sends no WebSocket ping frames"),
				expect(P),
				expect(F, "hint: the server sent no ping"),
				expect(P),
				expect(F, "the server went down with it"),
				expect(F, append(crash, crashHint)...),
			},
			crashed: true,
		},
		{
			// Python's websockets with its keepalive at 1 s (20 s by
			// default): it pings every second and closes a silent peer
			// with 1011 one pong timeout after the ping.
			name: "python websockets, keepalive 1 s",
			start: func(t *testing.T) (string, *server) {
				s := startWebsockets(t, time.Second, time.Second)
				return s.url, s
			},
			opts: doctor.Options{Duration: 5 * time.Second},
			want: []want{
				expect(P, "subprotocol none", "not a Herald endpoint"),
				expect(P, "ping frames every 1.0", "3 pings"),
				expect(P),
				expect(P, `with close 1011 "keepalive ping timeout"`, "unanswered pings: 1"),
				expect(P, "close 1000"),
				expect(P, "invalid JSON -> a reply, connection still open", "reserved opcode 0x3 -> close 1002"),
				expect(P),
			},
		},
		{
			// A healthy ws server (3 s heartbeat) behind a proxy that
			// closes connections quiet for 1 s. The connection that
			// answers every ping is dropped while quiet: the heartbeat
			// fails and names an idle timeout; the silent one is dropped
			// the same way, which says nothing about dead peers.
			name: "ws behind a proxy with a 1 s idle timeout",
			start: func(t *testing.T) (string, *server) {
				backend := startWS(t, 3*time.Second, true)
				return "ws://" + startIdleProxy(t, hostPort(backend.url), time.Second) + "/", backend
			},
			opts: doctor.Options{Duration: 7 * time.Second, Subprotocols: none},
			want: []want{
				expect(P),
				expect(F, "connection dropped without a close frame", "before the server sent any ping", "without traffic either way",
					"hint: the connection was dropped while quiet, and the server had sent no ping: an idle timeout of about 1.0"),
				expect(P),
				expect(I, "but the connection that answered every ping was dropped too"),
				expect(P, "close 1000"),
				expect(P, "reserved opcode 0x3 -> close 1002"),
				expect(P, "kept its other connections open"),
			},
		},
	}
	names := []string{"handshake", "heartbeat", "pong", "dead-peer", "close", "validation", "liveness"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, srv := tc.start(t)
			opts := tc.opts
			opts.Timeout = 2 * time.Second
			rep := doctor.Run(context.Background(), url, &opts)
			logReport(t, rep)
			if len(rep.Checks) != len(names) {
				t.Fatalf("%d checks, want %d", len(rep.Checks), len(names))
			}
			failed := false
			for i, c := range rep.Checks {
				w := tc.want[i]
				failed = failed || w.status == doctor.Fail
				if c.Name != names[i] {
					t.Errorf("check %d is %s, want %s", i, c.Name, names[i])
				}
				if c.Status != w.status {
					t.Errorf("%s: %s, want %s", c.Name, c.Status, w.status)
				}
				for _, words := range w.words {
					text, in := c.Summary, "summary"
					if hint, ok := strings.CutPrefix(words, "hint: "); ok {
						text, in, words = c.Hint, "hint", hint
					}
					if !saysRoughly(text, words) {
						t.Errorf("%s %s %q does not say %q", c.Name, in, text, words)
					}
				}
			}
			if rep.Failed() != failed {
				t.Errorf("Failed() is %v, want %v", rep.Failed(), failed)
			}
			checkJSON(t, rep)
			if crashed := srv.exited(); crashed != tc.crashed {
				t.Errorf("the server process exited: %v, want %v", crashed, tc.crashed)
			}
		})
	}
}

// checkJSON checks that the report's JSON form carries every verdict.
func checkJSON(t *testing.T, rep doctor.Report) {
	t.Helper()
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Checks []struct {
			Name, Status, Summary, Hint string
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for i, c := range got.Checks {
		r := rep.Checks[i]
		if c.Name != r.Name || c.Status != string(r.Status) || c.Summary != r.Summary || c.Hint != r.Hint {
			t.Errorf("JSON check %d: %+v, want %+v", i, c, r)
		}
	}
}

// saysRoughly reports whether text holds words, where the fixtures' 3.00s
// heartbeat may read from 2.90s to 3.19s: timers on a loaded machine fire
// late, and the doctor reports what it measured.
func saysRoughly(text, words string) bool {
	pat := strings.ReplaceAll(regexp.QuoteMeta(words), `3\.00s`, `(2\.9\d|3\.[01]\d)s`)
	return regexp.MustCompile(pat).MatchString(text)
}
