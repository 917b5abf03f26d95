package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// stormClients is the size of the reconnect storm of
// TestServeConnectHookStorm.
const stormClients = 5000

// TestServeConnectHookStorm: stormClients Go clients (herald bench storm,
// in a process of its own) are connected through a connect hook when the
// server is killed and started again on the same port. Every client comes
// back, recovering what was published meanwhile, while the backend, which
// takes 5 ms per request, never sees more requests at once than
// --hook-concurrency.
//
// Both processes are built without the race detector, whose limit of 8,128
// goroutines 5,000 clients and their upgrades would pass.
func TestServeConnectHookStorm(t *testing.T) {
	const concurrency = 16
	// Requests are counted per server process (the path names it): a
	// killed server's requests may still be in the backend when the next
	// one starts.
	var inFlight [2]atomic.Int64
	var most, calls, conns atomic.Int64
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gen := &inFlight[0]
		if r.URL.Path == "/connect/1" {
			gen = &inFlight[1]
		}
		n := gen.Add(1)
		defer gen.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		calls.Add(1)
		io.Copy(io.Discard, r.Body)
		time.Sleep(5 * time.Millisecond) // the backend's own work: a session lookup
		io.WriteString(w, `{"user":"u"}`)
	}))
	backend.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	backend.Start()
	t.Cleanup(backend.Close)

	dir := t.TempDir()
	bin := filepath.Join(dir, "herald")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	serverLog, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			log, _ := os.ReadFile(serverLog.Name())
			for line := range strings.Lines(string(log)) {
				if !strings.Contains(line, "connection closed") {
					t.Log(line)
				}
			}
		}
	}()
	serve := func(gen int) *exec.Cmd {
		cmd := exec.Command(bin, "serve", "--addr", addr, "--data-dir", filepath.Join(dir, "data"),
			"--hook-connect", fmt.Sprintf("%s/connect/%d", backend.URL, gen), "--hook-concurrency", strconv.Itoa(concurrency),
			"--rate", "100000", "--burst", "100000")
		cmd.Stderr = serverLog
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	first := serve(0)
	restarted := make(chan *exec.Cmd, 1)
	go func() {
		first.Wait() // killed by the bench's --disrupt
		restarted <- serve(1)
	}()
	t.Cleanup(func() {
		first.Process.Kill()
		select {
		case cmd := <-restarted:
			cmd.Process.Kill()
			cmd.Wait()
		case <-time.After(10 * time.Second):
		}
	})
	waitServing(t, addr)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, bin, "bench", "storm", "--url", "ws://"+addr+"/ws",
		"--subscribers", strconv.Itoa(stormClients), "--rate", "5", "--duration", "8s",
		"--disrupt-at", "2s", "--disrupt", fmt.Sprintf("kill -KILL %d", first.Process.Pid)).Output()
	if err != nil {
		t.Fatalf("herald bench storm: %v\n%s", err, out)
	}
	summary := string(out)
	t.Logf("%d clients, %d connect hook calls over %d connections in %v, at most %d at once\n%s",
		stormClients, calls.Load(), conns.Load(), time.Since(start).Round(time.Millisecond), most.Load(), summary)
	for row, want := range map[string]int{"disconnected": stormClients, "back": stormClients, "lost": 0, "duplicated": 0} {
		if got := summaryInt(t, summary, row); got != want {
			t.Errorf("%s = %d, want %d", row, got, want)
		}
	}
	if got, want := summaryValue(t, summary, "recovered"), "true 5,000, false 0"; got != want {
		t.Errorf("recovered %q, want %q", got, want)
	}
	if m := most.Load(); m > concurrency {
		t.Errorf("the backend saw %d connect requests at once, more than --hook-concurrency %d", m, concurrency)
	}
	if c := calls.Load(); c < 2*stormClients {
		t.Errorf("the backend got %d connect requests, want at least %d: every client twice", c, 2*stormClients)
	}
}

// waitServing waits until addr accepts connections.
func waitServing(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("herald serve at %s did not start: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
