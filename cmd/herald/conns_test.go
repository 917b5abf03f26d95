package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// startServe runs serve in-process with the flags args on a free port and
// returns its address; the test's end shuts it down.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	addr, _, _ := startServeStop(t, args...)
	return addr
}

// startServeStop is startServe that also returns a function that shuts the
// server down and returns serve's error, and the server's log.
func startServeStop(t *testing.T, args ...string) (addr string, stop func() error, log *syncBuffer) {
	t.Helper()
	var c serveConfig
	fs := serveFlags(stdio{out: io.Discard, err: io.Discard}, &c)
	if err := parseFlags(fs, args); err != nil {
		t.Fatal(err)
	}
	if err := c.finish(fs); err != nil {
		t.Fatal(err)
	}
	log = &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(log, nil))
	c.opts.Broker = broker.NewMemory(&broker.MemoryOptions{DataDir: c.dataDir, Logger: logger})
	c.opts.Logger = logger
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, &c, logger) }()
	var once sync.Once
	var serr error
	stop = func() error {
		once.Do(func() { cancel(); serr = <-done })
		return serr
	}
	t.Cleanup(func() { stop() })
	return ln.Addr().String(), stop, log
}

// keepAlive opens a connection to addr and makes one HTTP/1.1 request for
// path on it, whose answer leaves the connection open and idle.
func keepAlive(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	c := dial(t, addr)
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(heraldtest.Timeout))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close {
		t.Fatalf("GET %s: %d closes the connection", path, resp.StatusCode)
	}
	return c
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reports whether the server closes c within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestHTTPIdleTimeoutClosesKeepAliveConnections(t *testing.T) {
	addr := startServe(t, "--http-idle-timeout", "200ms")
	conns := make([]net.Conn, 20)
	for i := range conns {
		conns[i] = keepAlive(t, addr, "/healthz")
	}
	start := time.Now()
	for i, c := range conns {
		if !closedWithin(c, 3*time.Second) {
			t.Fatalf("keep-alive connection %d still open %v after its request (idle timeout 200ms)", i, time.Since(start))
		}
	}
}

// TestHTTPConnectionsShareMaxConnections checks that HTTP connections not
// upgraded count towards --max-connections with the WebSocket connections:
// past httpSlack of them, a new connection at the limit closes the
// longest-idle one, or is closed itself when none is idle.
func TestHTTPConnectionsShareMaxConnections(t *testing.T) {
	const max = httpSlack + 10
	srv := herald.New(&herald.Options{MaxConnections: max, Broker: broker.NewMemory(nil)})
	conns := newHTTPConns(max, srv.Connections)
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ConnState = conns.ConnState
	ts.Start()
	t.Cleanup(func() { ts.Close(); srv.Close() })
	addr := ts.Listener.Addr().String()

	for range 10 {
		heraldtest.DialWelcome(t, "ws://"+addr+"/ws", nil)
	}
	var idle []net.Conn
	for n := 1; n <= httpSlack; n++ { // one at a time, so that they are idle in this order
		idle = append(idle, keepAlive(t, addr, "/ws"))
		waitFor(t, "idle connection", func() bool { _, i := conns.count(); return i == n })
	}

	// At the limit: each new connection pushes out the longest idle.
	for i := range 5 {
		idle = append(idle, keepAlive(t, addr, "/ws"))
		waitFor(t, "idle connection", func() bool { _, i := conns.count(); return i == httpSlack })
		if !closedWithin(idle[i], heraldtest.Timeout) {
			t.Fatalf("idle connection %d still open after a new one came at the limit", i)
		}
	}
	if closedWithin(idle[5], 100*time.Millisecond) {
		t.Fatal("more idle connections closed than new ones came")
	}
	if open, _ := conns.count(); open+srv.Connections() != max {
		t.Fatalf("%d HTTP + %d WebSocket connections, want %d in all", open, srv.Connections(), max)
	}

	// With none idle, a new connection is closed at once.
	for _, c := range idle[5:] {
		c.Close()
	}
	waitFor(t, "idle connections gone", func() bool { o, _ := conns.count(); return o == 0 })
	for range httpSlack {
		c := dial(t, addr)
		io.WriteString(c, "GET /ws HTTP/1.1\r\n") // a request in progress
	}
	waitFor(t, "busy connections", func() bool { o, _ := conns.count(); return o == httpSlack })
	if c := dial(t, addr); !closedWithin(c, heraldtest.Timeout) {
		t.Fatal("a connection over the limit with none idle was kept")
	}
}

func TestMaxConnectionsFor(t *testing.T) {
	for limit, want := range map[uint64]int{0: 0, 256: 128, 512: 256, 513: 257, 1024: 768, 1 << 20: 1<<20 - 256, 1 << 39: 1<<31 - 256} {
		if got := maxConnectionsFor(limit); got != want {
			t.Errorf("maxConnectionsFor(%d) = %d, want %d", limit, got, want)
		}
	}
}

// TestAllowedOriginsTrimsSpaces checks that "https://a, https://b" allows
// both origins, and that empty entries allow nothing.
func TestAllowedOriginsTrimsSpaces(t *testing.T) {
	addr := startServe(t, "--allowed-origins", "https://a.test, https://b.test, ,")
	for origin, ok := range map[string]bool{"https://a.test": true, "https://b.test": true, "https://c.test": false} {
		c, err := heraldtest.Dial(t.Context(), "ws://"+addr+"/ws", &heraldtest.DialOptions{Header: http.Header{"Origin": {origin}}})
		if (err == nil) != ok {
			t.Errorf("Origin %s: err %v, want allowed %v", origin, err, ok)
		}
		if c != nil {
			c.Close()
		}
	}
}
