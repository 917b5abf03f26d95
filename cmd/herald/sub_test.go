package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
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
	n := testnode.Start(t, herald.Options{Broker: broker.NewMemory(nil)})
	var subOut, subErr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- runCmd(t.Context(), "", &subOut, &subErr, "sub", "--url", n.URL(), "--count", "4", "chat", "news")
	}()
	waitFor(t, "sub to subscribe", func() bool { return strings.Contains(subErr.String(), "subscribed to news") })

	pub := func(in string, args ...string) string {
		t.Helper()
		var out, errOut syncBuffer
		if c := runCmd(t.Context(), in, &out, &errOut, append([]string{"pub", "--url", n.URL()}, args...)...); c != 0 {
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
	if !strings.Contains(subErr.String(), "connected to "+n.URL()) {
		t.Errorf("sub's stderr lacks the connection event: %s", subErr.String())
	}
}

// TestSubReconnectsAndRecovers kills the server under herald sub while a
// publisher keeps publishing, and starts it again with the same broker: sub
// reports the disconnection, the reconnection delay and the recovery on
// stderr, and prints every message exactly once, in order.
func TestSubReconnectsAndRecovers(t *testing.T) {
	b := broker.NewMemory(nil)
	n := testnode.Start(t, herald.Options{Broker: b})
	pubNode := testnode.Start(t, herald.Options{Broker: testnode.PublishOnly{Broker: b}})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var subOut, subErr syncBuffer
	code := make(chan int, 1)
	go func() { code <- runCmd(ctx, "", &subOut, &subErr, "sub", "--url", n.URL(), "chat") }()
	waitFor(t, "sub to subscribe", func() bool { return strings.Contains(subErr.String(), "subscribed to chat") })

	pc, err := client.Dial(t.Context(), pubNode.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	const total = 40
	for i := 1; i <= total; i++ {
		if i == total/2 {
			n.Kill()
		}
		if i == total/2+5 {
			n.Start()
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
