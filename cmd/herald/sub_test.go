package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/client"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) lines() []string {
	return strings.Split(strings.TrimSuffix(s.String(), "\n"), "\n")
}

// wsNode is a real Herald server on a real socket that a test can kill (its
// listener and connections closed abruptly) and start again on the same
// address, with the same broker.
type wsNode struct {
	t    *testing.T
	b    broker.Broker
	addr string
	srv  *herald.Server
	hs   *httptest.Server
}

func startWSNode(t *testing.T, b broker.Broker) *wsNode {
	t.Helper()
	n := &wsNode{t: t, b: b, addr: "127.0.0.1:0"}
	n.start()
	t.Cleanup(n.kill)
	return n
}

func (n *wsNode) start() {
	ln, err := net.Listen("tcp", n.addr)
	if err != nil {
		n.t.Fatal(err)
	}
	n.addr = ln.Addr().String()
	n.srv = herald.New(&herald.Options{Broker: n.b})
	mux := http.NewServeMux()
	mux.Handle("GET /ws", n.srv)
	n.hs = httptest.NewUnstartedServer(mux)
	n.hs.Listener.Close()
	n.hs.Listener = ln
	n.hs.Start()
}

func (n *wsNode) url() string { return "ws://" + n.addr + "/ws" }

func (n *wsNode) kill() {
	if n.hs == nil {
		return
	}
	n.hs.Listener.Close()
	n.srv.Close()
	n.hs.Close()
	n.hs = nil
}

// runCmd runs the herald command line args with the given stdin and
// buffers, returning the exit status.
func runCmd(ctx context.Context, in string, out, errOut *syncBuffer, args ...string) int {
	return run(ctx, stdio{in: strings.NewReader(in), out: out, err: errOut}, args)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSubPrintsPublishedMessages runs herald sub --count 4 on two channels
// and herald pub with an argument (JSON, and text that is not JSON) and
// with stdin lines: sub prints the four messages as JSON lines and exits 0;
// pub prints one acknowledgement per message.
func TestSubPrintsPublishedMessages(t *testing.T) {
	n := startWSNode(t, broker.NewMemory(nil))
	var subOut, subErr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- runCmd(t.Context(), "", &subOut, &subErr, "sub", "--url", n.url(), "--count", "4", "chat", "news")
	}()
	waitFor(t, "sub to subscribe", func() bool { return strings.Contains(subErr.String(), "subscribed to news") })

	pub := func(in string, args ...string) string {
		t.Helper()
		var out, errOut syncBuffer
		if c := runCmd(t.Context(), in, &out, &errOut, append([]string{"pub", "--url", n.url()}, args...)...); c != 0 {
			t.Fatalf("pub %q: exit %d: %s", args, c, errOut.String())
		}
		return out.String()
	}
	if got := pub("", "chat", `{"text":"hi"}`); got != `{"channel":"chat","offset":1}`+"\n" {
		t.Errorf("pub printed %q", got)
	}
	if got := pub("", "news", "plain text"); got != `{"channel":"news","offset":1}`+"\n" {
		t.Errorf("pub printed %q", got)
	}
	if got := pub("42\nhello world\n", "chat"); got != `{"channel":"chat","offset":2}`+"\n"+`{"channel":"chat","offset":3}`+"\n" {
		t.Errorf("pub from stdin printed %q", got)
	}

	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("sub exited %d: %s", c, subErr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sub did not exit after --count messages")
	}
	got := subOut.lines()
	slices.Sort(got)
	want := []string{
		`{"channel":"chat","offset":1,"data":{"text":"hi"}}`,
		`{"channel":"chat","offset":2,"data":42}`,
		`{"channel":"chat","offset":3,"data":"hello world"}`,
		`{"channel":"news","offset":1,"data":"plain text"}`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("sub printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(subErr.String(), "connected to "+n.url()) {
		t.Errorf("sub's stderr lacks the connection event: %s", subErr.String())
	}
}

// TestSubReconnectsAndRecovers kills the server under herald sub while a
// publisher keeps publishing, and starts it again with the same broker: sub
// reports the disconnection, the reconnection delay and the recovery on
// stderr, and prints every message exactly once, in order.
func TestSubReconnectsAndRecovers(t *testing.T) {
	b := broker.NewMemory(nil)
	n := startWSNode(t, b)
	pubNode := startWSNode(t, publishOnly{b})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var subOut, subErr syncBuffer
	code := make(chan int, 1)
	go func() { code <- runCmd(ctx, "", &subOut, &subErr, "sub", "--url", n.url(), "chat") }()
	waitFor(t, "sub to subscribe", func() bool { return strings.Contains(subErr.String(), "subscribed to chat") })

	pc, err := client.Dial(t.Context(), pubNode.url(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	const total = 40
	for i := 1; i <= total; i++ {
		if i == total/2 {
			n.kill()
		}
		if i == total/2+5 {
			n.start()
		}
		if _, err := pc.Publish(t.Context(), "chat", i); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitFor(t, "every message", func() bool { return len(subOut.lines()) >= total })
	time.Sleep(100 * time.Millisecond)
	cancel()
	if c := <-code; c != 0 {
		t.Errorf("interrupted sub exited %d", c)
	}
	for i, line := range subOut.lines() {
		var m struct {
			Offset uint64
			Data   int
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil || m.Data != i+1 || m.Offset != uint64(i+1) {
			t.Fatalf("line %d is %s, want message %d once, in order", i, line, i+1)
		}
	}
	if got := len(subOut.lines()); got != total {
		t.Errorf("sub printed %d messages, want %d", got, total)
	}
	for _, want := range []string{"disconnected: ", "reconnecting in ", "chat: recovered=true"} {
		if !strings.Contains(subErr.String(), want) {
			t.Errorf("sub's stderr lacks %q:\n%s", want, subErr.String())
		}
	}
}

// publishOnly is a second node's view of a shared memory broker: it
// publishes but takes no deliveries, because the memory broker delivers to
// one running node at a time.
type publishOnly struct{ broker.Broker }

func (publishOnly) Run(ctx context.Context, _ func(broker.Publication)) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestSubPubUsage checks the exit status of command line mistakes and that
// help documents every flag.
func TestSubPubUsage(t *testing.T) {
	for _, args := range [][]string{{"sub"}, {"sub", "--count", "-1", "chat"}, {"pub"}, {"pub", "chat", "1", "2"}, {"pub", "--nope", "chat"}} {
		var out, errOut syncBuffer
		if c := runCmd(t.Context(), "", &out, &errOut, args...); c != 2 {
			t.Errorf("%q: exit %d, want 2", args, c)
		}
	}
	for cmd, flags := range map[string][]string{"sub": {"--url", "--token", "--count", "--config"}, "pub": {"--url", "--token", "--config"}} {
		var out, errOut syncBuffer
		if c := runCmd(t.Context(), "", &out, &errOut, "help", cmd); c != 0 {
			t.Errorf("help %s: exit %d", cmd, c)
		}
		for _, f := range flags {
			if !strings.Contains(out.String(), strings.TrimPrefix(f, "-")) {
				t.Errorf("help %s lacks %s:\n%s", cmd, f, out.String())
			}
		}
	}
}
