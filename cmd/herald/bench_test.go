package main

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
)

// startBenchNode starts an in-process server for herald bench: WebSocket
// at /ws, health at /healthz, a request rate limit high enough for a load
// test, and a restart that keeps the broker (so clients recover).
func startBenchNode(t *testing.T) *testnode.Node {
	b := broker.NewMemory(nil)
	t.Cleanup(func() { b.Close() }) // after the node's kill
	n := testnode.New(t, herald.Options{Broker: b, Rate: 1e6, Burst: 1e6})
	n.Routes = func(mux *http.ServeMux, _ *herald.Server) {
		mux.HandleFunc("GET /healthz", func(http.ResponseWriter, *http.Request) {})
	}
	n.Start()
	return n
}

// runBenchCmd runs herald bench and returns its stdout; it fails the test
// on a non-zero exit.
func runBenchCmd(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut syncBuffer
	if code := runCmd(t.Context(), "", &out, &errOut, append([]string{"bench"}, args...)...); code != 0 {
		t.Fatalf("herald bench %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out.String(), errOut.String())
	}
	return out.String()
}

// summaryValue returns the value of a summary table row.
func summaryValue(t *testing.T, summary, name string) string {
	t.Helper()
	for line := range strings.Lines(summary) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), name+"  "); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatalf("no %q row in the summary:\n%s", name, summary)
	return ""
}

func summaryInt(t *testing.T, summary, name string) int {
	t.Helper()
	v := summaryValue(t, summary, name)
	f, _, _ := strings.Cut(v, " ")
	n, err := strconv.Atoi(strings.ReplaceAll(f, ",", ""))
	if err != nil {
		t.Fatalf("row %q: %q is not a count", name, v)
	}
	return n
}

// TestBenchFanout runs a short fanout: every subscriber gets every
// publication once, in order, and the table says so.
func TestBenchFanout(t *testing.T) {
	n := startBenchNode(t)
	out := runBenchCmd(t, "fanout", "--url", n.URL(), "--subscribers", "5", "--duration", "300ms", "--inflight", "4")
	published := summaryInt(t, out, "published")
	if published == 0 {
		t.Fatalf("nothing published:\n%s", out)
	}
	if got := summaryInt(t, out, "delivered"); got != published*5 {
		t.Errorf("delivered %d, want %d (published %d x 5 subscribers)\n%s", got, published*5, published, out)
	}
	for _, row := range []string{"lost", "duplicated", "out of order", "disconnected"} {
		if got := summaryInt(t, out, row); got != 0 {
			t.Errorf("%s = %d, want 0\n%s", row, got, out)
		}
	}
	if !strings.Contains(summaryValue(t, out, "latency"), "p99.9") {
		t.Errorf("latency row without percentiles:\n%s", out)
	}
}

// TestBenchFanoutTwoNodes publishes on one node and subscribes on another
// that shares its broker: every publication reaches the other node's
// subscribers, and the table names where the publisher was.
func TestBenchFanoutTwoNodes(t *testing.T) {
	b := broker.NewMemory(nil)
	t.Cleanup(func() { b.Close() })
	subNode := testnode.Start(t, herald.Options{Broker: b, Rate: 1e6, Burst: 1e6})
	pubNode := testnode.Start(t, herald.Options{Broker: testnode.PublishOnly{Broker: b}, Rate: 1e6, Burst: 1e6})
	out := runBenchCmd(t, "fanout", "--url", subNode.URL(), "--publish-url", pubNode.URL(), "--subscribers", "4",
		"--duration", "300ms", "--inflight", "4")
	published := summaryInt(t, out, "published")
	if published == 0 || summaryInt(t, out, "delivered") != published*4 || summaryInt(t, out, "lost") != 0 {
		t.Errorf("published %d, want every one delivered to 4 subscribers:\n%s", published, out)
	}
	if got := summaryValue(t, out, "publisher on"); got != pubNode.URL() {
		t.Errorf("publisher on %q, want %q", got, pubNode.URL())
	}
}

// TestBenchFanoutJSON checks --json at a fixed rate, with the server's CPU
// read from /proc (this process serves).
func TestBenchFanoutJSON(t *testing.T) {
	n := startBenchNode(t)
	out := runBenchCmd(t, "fanout", "--json", "--url", n.URL(), "--subscribers", "3", "--rate", "100",
		"--duration", "300ms", "--server-pid", strconv.Itoa(os.Getpid()))
	var r struct {
		Scenario         string
		Inflight         int
		Published        uint64
		Delivered        uint64
		Lost, Duplicated uint64
		ServerCPUPerMsg  *float64 `json:"server_cpu_us_per_delivered"`
		DeliveredPerSec  float64  `json:"delivered_per_s"`
		Latency          struct {
			P50 float64 `json:"p50_ms"`
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, out)
	}
	if r.Scenario != "fanout" || r.Published < 20 || r.Published > 31 {
		t.Errorf("scenario %q, published %d at 100/s for 300ms", r.Scenario, r.Published)
	}
	if r.Inflight != 64 {
		t.Errorf("%d publishes in flight at a fixed rate, want the default 64", r.Inflight)
	}
	if r.Delivered != r.Published*3 || r.Lost != 0 || r.Duplicated != 0 {
		t.Errorf("delivered %d of %d, lost %d, duplicated %d", r.Delivered, r.Published*3, r.Lost, r.Duplicated)
	}
	if r.ServerCPUPerMsg == nil || r.DeliveredPerSec <= 0 {
		t.Errorf("server CPU per message %v, delivered/s %v", r.ServerCPUPerMsg, r.DeliveredPerSec)
	}
}

// TestBenchPublishAndIdle runs the publish and idle scenarios briefly.
func TestBenchPublishAndIdle(t *testing.T) {
	n := startBenchNode(t)
	out := runBenchCmd(t, "publish", "--url", n.URL(), "--publishers", "2", "--inflight", "2", "--duration", "200ms")
	if summaryInt(t, out, "published") == 0 || summaryInt(t, out, "errors") != 0 {
		t.Errorf("publish summary:\n%s", out)
	}
	out = runBenchCmd(t, "idle", "--url", n.URL(), "--connections", "20", "--hold", "200ms", "--channel", "idle")
	if got := summaryValue(t, out, "survived"); got != "20 of 20" {
		t.Errorf("survived %q\n%s", got, out)
	}
}

// TestBenchStorm drops every connection while messages flow: all clients
// come back, recover, and nothing is lost or duplicated.
func TestBenchStorm(t *testing.T) {
	n := startBenchNode(t)
	time.AfterFunc(600*time.Millisecond, func() {
		n.Kill()
		time.Sleep(200 * time.Millisecond)
		n.Start()
	})
	out := runBenchCmd(t, "storm", "--url", n.URL(), "--subscribers", "10", "--rate", "50",
		"--disrupt-at", "500ms", "--disrupt", "true", "--duration", "2s")
	for row, want := range map[string]int{"disconnected": 10, "back": 10, "lost": 0, "duplicated": 0} {
		if got := summaryInt(t, out, row); got != want {
			t.Errorf("%s = %d, want %d\n%s", row, got, want, out)
		}
	}
	if got := summaryValue(t, out, "recovered"); got != "true 10, false 0" {
		t.Errorf("recovered %q\n%s", got, out)
	}
	// The last client back: it lost its connection, tried again and
	// recovered, in that order.
	last := summaryValue(t, out, "the client back last")
	if !regexp.MustCompile(`^disconnected \+[0-9.]+ ms, .*connected \+[0-9.]+ ms, recovered \+[0-9.]+ ms$`).MatchString(last) {
		t.Errorf("the client back last: %q\n%s", last, out)
	}
}

func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{{"bench"}, {"bench", "nosuch"}, {"bench", "fanout", "--subscribers", "0"}, {"bench", "fanout", "extra"}} {
		var out, errOut syncBuffer
		if code := runCmd(t.Context(), "", &out, &errOut, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %s)", args, code, errOut.String())
		}
	}
}

// TestBenchWrongServerPID refuses a --server-pid that does not listen on
// the URL's port, rather than report another process's CPU.
func TestBenchWrongServerPID(t *testing.T) {
	n := startBenchNode(t)
	var out, errOut syncBuffer
	code := runCmd(t.Context(), "", &out, &errOut, "bench", "publish", "--url", n.URL(), "--duration", "100ms",
		"--server-pid", strconv.Itoa(os.Getppid()))
	if code != 1 || !strings.Contains(errOut.String(), "does not listen on port") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
}
