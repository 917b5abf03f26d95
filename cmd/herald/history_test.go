package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
)

// publishN publishes {"n":1} to {"n":count} to channel and returns the
// publisher's session id.
func publishN(t *testing.T, url, channel string, count int) string {
	t.Helper()
	session := make(chan string, 1)
	c, err := client.Dial(t.Context(), url, &client.Options{OnStateChange: func(ch client.StateChange) {
		if ch.State == client.StateConnected {
			select {
			case session <- ch.Session:
			default:
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 1; i <= count; i++ {
		if _, err := c.Publish(t.Context(), channel, map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	return <-session
}

// TestSubLast runs herald sub --last 2 after three publications: it prints
// the newest two, then the live one, with consecutive offsets.
func TestSubLast(t *testing.T) {
	n := testnode.Start(t, herald.Options{Broker: broker.NewMemory(nil)})
	publishN(t, n.URL(), "chat", 3)
	var subOut, subErr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- runCmd(t.Context(), "", &subOut, &subErr, "sub", "--url", n.URL(), "--last", "2", "--count", "3", "chat")
	}()
	waitFor(t, "sub to subscribe", func() bool { return strings.Contains(subErr.String(), "subscribed to chat") })
	var out, errOut syncBuffer
	if c := runCmd(t.Context(), "", &out, &errOut, "pub", "--url", n.URL(), "chat", `{"n":4}`); c != 0 {
		t.Fatalf("pub: exit %d: %s", c, errOut.String())
	}
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("sub exited %d: %s", c, subErr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sub did not exit after --count messages")
	}
	want := `{"channel":"chat","offset":2,"data":{"n":2}}` + "\n" +
		`{"channel":"chat","offset":3,"data":{"n":3}}` + "\n" +
		`{"channel":"chat","offset":4,"data":{"n":4}}` + "\n"
	if got := subOut.String(); got != want {
		t.Errorf("sub --last 2 printed\n%s\nwant\n%s", got, want)
	}
}

// TestHistoryCommand pages back through five messages two at a time with
// --limit and --before: each page oldest first with ts and from, stderr
// naming the --before of the older page while there is one.
func TestHistoryCommand(t *testing.T) {
	n := testnode.Start(t, herald.Options{Broker: broker.NewMemory(nil)})
	start := time.Now().Add(-time.Second).UnixMilli()
	session := publishN(t, n.URL(), "chat", 5)

	page := func(args ...string) (offsets []string, hint string) {
		t.Helper()
		var out, errOut syncBuffer
		if c := runCmd(t.Context(), "", &out, &errOut, append([]string{"history", "--url", n.URL()}, args...)...); c != 0 {
			t.Fatalf("history %q: exit %d: %s", args, c, errOut.String())
		}
		for _, l := range out.lines() {
			var m struct {
				Channel string
				Offset  uint64
				TS      int64
				From    client.Member
				Data    struct{ N uint64 }
			}
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("history printed %q: %v", l, err)
			}
			if m.Channel != "chat" || m.Data.N != m.Offset || m.TS < start || m.TS > time.Now().UnixMilli() || m.From != (client.Member{Client: session}) {
				t.Errorf("history printed %s; want channel chat, data n = offset, a ts of this test, from client %s", l, session)
			}
			offsets = append(offsets, fmt.Sprint(m.Offset))
		}
		return offsets, errOut.String()
	}
	for _, c := range []struct {
		args    []string
		offsets string
		hint    string
	}{
		{[]string{"--limit", "2", "chat"}, "4 5", "older messages: herald history --before 4 chat\n"},
		{[]string{"--limit", "2", "--before", "4", "chat"}, "2 3", "older messages: herald history --before 2 chat\n"},
		{[]string{"--limit", "2", "--before", "2", "chat"}, "1", ""},
		{[]string{"chat"}, "1 2 3 4 5", ""},
	} {
		offsets, hint := page(c.args...)
		if strings.Join(offsets, " ") != c.offsets || hint != c.hint {
			t.Errorf("history %q: offsets %q, stderr %q; want %q, %q", c.args, offsets, hint, c.offsets, c.hint)
		}
	}

	var out, errOut syncBuffer
	if c := runCmd(t.Context(), "", &out, &errOut, "history", "--url", n.URL(), "no spaces"); c != 1 || !strings.Contains(errOut.String(), "invalid_channel") {
		t.Errorf("history of an invalid channel: exit %d, stderr %q; want 1 and invalid_channel", c, errOut.String())
	}
}

// TestHistoryUsage checks the exit status of command line mistakes and that
// help documents every flag.
func TestHistoryUsage(t *testing.T) {
	for _, args := range [][]string{{"history"}, {"history", "a", "b"}, {"history", "--limit", "0", "chat"},
		{"history", "--limit", "1001", "chat"}, {"history", "--before", "-1", "chat"}, {"sub", "--last", "1001", "chat"}, {"sub", "--last", "-1", "chat"}} {
		var out, errOut syncBuffer
		if c := runCmd(t.Context(), "", &out, &errOut, args...); c != 2 {
			t.Errorf("%q: exit %d, want 2", args, c)
		}
	}
	for cmd, flags := range map[string][]string{"history": {"--url", "--token", "--limit", "--before", "--config"}, "sub": {"--last"}} {
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
