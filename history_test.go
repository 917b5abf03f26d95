package herald_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// session returns the session id of a connection's welcome.
func welcomeSession(t *testing.T, url string, o *heraldtest.DialOptions) (*heraldtest.Conn, string) {
	t.Helper()
	c := heraldtest.MustDial(t, url, o)
	w := c.Expect(t, "welcome")
	return c, w.Fields()["session"].(string)
}

// stillServing checks that c still answers requests.
func stillServing(t *testing.T, c *heraldtest.Conn) {
	t.Helper()
	c.Send(t, `{"type":"ping","id":777}`)
	if f := c.Expect(t, "pong"); f.ID != 777 {
		t.Fatalf("pong %s, want id 777", f)
	}
}

// meta is the ts and from of a message.
type meta struct {
	ts     float64
	client any
	user   any
	from   bool
}

func metaOf(t *testing.T, m map[string]any) meta {
	t.Helper()
	ts, ok := m["ts"].(float64)
	if !ok {
		t.Fatalf("message without ts: %v", m)
	}
	out := meta{ts: ts}
	if f, ok := m["from"].(map[string]any); ok {
		out.from, out.client, out.user = true, f["client"], f["user"]
	}
	return out
}

// TestMessageMetadata: every message, live, recovered, in a backlog or a
// history page, carries the time the server accepted it and the session
// and user that published it as the server knows them, whatever the
// publish claimed; an anonymous sender has no user, the application none.
func TestMessageMetadata(t *testing.T) {
	srv := jwtServer(t, herald.Options{Anonymous: herald.AnonymousAllow})
	alice, aliceID := welcomeSession(t, srv.url, bearer(token(t, jwt.MapClaims{"sub": "alice", "aud": "herald"})))
	anon, anonID := welcomeSession(t, srv.url, nil)
	sub := heraldtest.DialWelcome(t, srv.url, nil)
	sub.Send(t, `{"type":"subscribe","id":1,"channel":"m"}`)
	epoch := sub.Expect(t, "subscribed").Epoch

	start := float64(time.Now().UnixMilli())
	alice.Send(t, `{"type":"publish","id":1,"channel":"m","data":"a","ts":1,"from":{"client":"s_FAKE","user":"mallory"}}`)
	alice.Expect(t, "published")
	anon.Send(t, `{"type":"publish","id":1,"channel":"m","data":"b"}`)
	anon.Expect(t, "published")
	if _, err := srv.Publish(context.Background(), "m", []byte(`"c"`), nil); err != nil {
		t.Fatal(err)
	}
	end := float64(time.Now().UnixMilli())
	want := []meta{{client: aliceID, user: "alice", from: true}, {client: anonID, from: true}, {}}
	check := func(what string, msgs []map[string]any) {
		t.Helper()
		if len(msgs) != 3 {
			t.Fatalf("%s: %d messages, want 3", what, len(msgs))
		}
		for i, m := range msgs {
			got := metaOf(t, m)
			if got.ts < start || got.ts > end {
				t.Errorf("%s: message %d has ts %v, want within [%v, %v]", what, i+1, got.ts, start, end)
			}
			got.ts = 0
			if got != want[i] {
				t.Errorf("%s: message %d from %+v, want %+v (%v)", what, i+1, got, want[i], m)
			}
			if i > 0 {
				if prev := msgs[i-1]["ts"].(float64); prev > m["ts"].(float64) {
					t.Errorf("%s: ts goes back from %v to %v", what, prev, m["ts"])
				}
			}
		}
	}
	read := func(c *heraldtest.Conn) []map[string]any {
		var msgs []map[string]any
		for range 3 {
			msgs = append(msgs, c.Expect(t, "message").Fields())
		}
		return msgs
	}
	live := read(sub)
	check("live", live)

	rec := heraldtest.DialWelcome(t, srv.url, nil)
	rec.Subscribe(t, 1, "m", &heraldtest.Frame{Epoch: epoch, Offset: 0})
	recovered := read(rec)
	check("recovered", recovered)

	back := heraldtest.DialWelcome(t, srv.url, nil)
	back.Send(t, `{"type":"subscribe","id":1,"channel":"m","last":3}`)
	back.Expect(t, "subscribed")
	backlog := read(back)
	check("backlog", backlog)

	back.Send(t, `{"type":"history","id":2,"channel":"m"}`)
	var page []map[string]any
	for _, m := range back.Expect(t, "page").Fields()["messages"].([]any) {
		page = append(page, m.(map[string]any))
	}
	check("page", page)
	for i := range live {
		for what, other := range map[string][]map[string]any{"recovered": recovered, "backlog": backlog, "page": page} {
			if other[i]["ts"] != live[i]["ts"] {
				t.Errorf("%s: message %d has ts %v, live had %v", what, i+1, other[i]["ts"], live[i]["ts"])
			}
		}
	}
}

// publishN publishes n messages "m1".."mn" on channel through the server.
func publishN(t *testing.T, srv *testServer, channel string, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if _, err := srv.Publish(context.Background(), channel, fmt.Appendf(nil, `"m%d"`, i), nil); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSubscribeLast: the subscribed reply comes first, then the newest
// last messages held, then live ones; last larger than history sends what
// it holds; last 0 is no backlog.
func TestSubscribeLast(t *testing.T) {
	srv := startServer(t, fastOpts(herald.Options{}))
	publishN(t, srv, "b", 5)
	c := heraldtest.DialWelcome(t, srv.url, nil)
	c.Send(t, `{"type":"subscribe","id":1,"channel":"b","last":3}`)
	if f := c.Expect(t, "subscribed"); f.Offset != 5 || f.Recovered != nil {
		t.Fatalf("subscribed %s, want offset 5 and no recovered", f)
	}
	expectOffsets(t, c, "b", 3, 5)
	publishN(t, srv, "b", 1)
	expectOffsets(t, c, "b", 6, 6)

	c2 := heraldtest.DialWelcome(t, srv.url, nil)
	c2.Send(t, `{"type":"subscribe","id":1,"channel":"b","last":1000}`)
	c2.Expect(t, "subscribed")
	expectOffsets(t, c2, "b", 1, 6)

	c3 := heraldtest.DialWelcome(t, srv.url, nil)
	c3.Send(t, `{"type":"subscribe","id":1,"channel":"b","last":0}`)
	c3.Expect(t, "subscribed")
	publishN(t, srv, "b", 1)
	expectOffsets(t, c3, "b", 7, 7)
	c3.Send(t, `{"type":"subscribe","id":2,"channel":"empty","last":50}`)
	if f := c3.Expect(t, "subscribed"); f.Offset != 0 {
		t.Fatalf("subscribed %s, want offset 0", f)
	}
	stillServing(t, c3)
}

// TestSubscribeLastUnderPublishing: a backlog taken while publishers run
// joins the live stream without a gap or a duplicate.
func TestSubscribeLastUnderPublishing(t *testing.T) {
	srv := startServer(t, fastOpts(herald.Options{}))
	const total, last = 400, 50
	pubs := dialPublishers(t, srv.url, 4)
	publishFrom(t, pubs, "busy", 40) // some history first
	subs := dialPublishers(t, srv.url, 5)
	var wg sync.WaitGroup
	wg.Go(func() { publishFrom(t, pubs, "busy", total-40) })
	from := make([]int, len(subs))
	during := false
	for i, c := range subs {
		time.Sleep(time.Millisecond)
		c.Send(t, fmt.Sprintf(`{"type":"subscribe","id":1,"channel":"busy","last":%d}`, last))
		f := c.Expect(t, "subscribed")
		from[i] = max(1, int(f.Offset)-last+1)
		during = during || f.Offset < total
	}
	wg.Wait()
	if !during {
		t.Fatal("every subscribe came after the publishers were done: the test proves nothing")
	}
	for i, c := range subs {
		expectOffsets(t, c, "busy", from[i], total)
		stillServing(t, c)
	}
}

// TestSubscribeLastBadRequests: a last out of range, not an integer, or
// with since is refused with bad_request, and the connection serves on.
func TestSubscribeLastBadRequests(t *testing.T) {
	srv := startServer(t, fastOpts(herald.Options{}))
	c := heraldtest.DialWelcome(t, srv.url, nil)
	for i, bad := range []string{`"last":-1`, `"last":1001`, `"last":1.5`, `"last":"3"`, `"last":true`,
		`"last":3,"since":{"epoch":"e","offset":1}`} {
		id := i + 1
		c.Send(t, fmt.Sprintf(`{"type":"subscribe","id":%d,"channel":"x",%s}`, id, bad))
		c.ExpectError(t, "bad_request", uint64(id))
		stillServing(t, c)
	}
	// last 0 with since is the same as since alone.
	c.Send(t, `{"type":"subscribe","id":50,"channel":"x","last":0}`)
	epoch := c.Expect(t, "subscribed").Epoch
	c.Send(t, fmt.Sprintf(`{"type":"subscribe","id":51,"channel":"x","last":0,"since":{"epoch":%q,"offset":0}}`, epoch))
	if f := c.Expect(t, "subscribed"); f.Recovered == nil || !*f.Recovered {
		t.Fatalf("subscribed %s, want recovered", f)
	}
}

// pageOf sends a history request and returns the page's fields.
func pageOf(t *testing.T, c *heraldtest.Conn, req string) map[string]any {
	t.Helper()
	c.Send(t, req)
	return c.Expect(t, "page").Fields()
}

// pageOffsets returns the offsets of a page's messages.
func pageOffsets(p map[string]any) []int {
	var offs []int
	for _, m := range p["messages"].([]any) {
		offs = append(offs, int(m.(map[string]any)["offset"].(float64)))
	}
	return offs
}

func wantPage(t *testing.T, p map[string]any, id int, more bool, offsets ...int) {
	t.Helper()
	got := pageOffsets(p)
	if fmt.Sprint(got) != fmt.Sprint(offsets) || p["more"] != more || int(p["id"].(float64)) != id {
		t.Fatalf("page %v: offsets %v more %v, want id %d offsets %v more %v", p, got, p["more"], id, offsets, more)
	}
}

// TestHistoryPages: history pages back from the newest, or from before,
// and says whether older messages are held; the page has the channel's
// epoch and newest offset; no subscription is needed.
func TestHistoryPages(t *testing.T) {
	srv := startServer(t, fastOpts(herald.Options{}))
	publishN(t, srv, "h", 5)
	c := heraldtest.DialWelcome(t, srv.url, nil)
	p := pageOf(t, c, `{"type":"history","id":1,"channel":"h","limit":2}`)
	wantPage(t, p, 1, true, 4, 5)
	if p["channel"] != "h" || p["offset"] != 5.0 || p["epoch"] == "" {
		t.Fatalf("page %v, want channel h at offset 5 with an epoch", p)
	}
	wantPage(t, pageOf(t, c, `{"type":"history","id":2,"channel":"h","limit":2,"before":4}`), 2, true, 2, 3)
	wantPage(t, pageOf(t, c, `{"type":"history","id":3,"channel":"h","limit":2,"before":2}`), 3, false, 1)
	wantPage(t, pageOf(t, c, `{"type":"history","id":4,"channel":"h"}`), 4, false, 1, 2, 3, 4, 5)
	wantPage(t, pageOf(t, c, `{"type":"history","id":5,"channel":"h","before":1}`), 5, false)
	wantPage(t, pageOf(t, c, `{"type":"history","id":6,"channel":"nothing"}`), 6, false)
	publishN(t, srv, "many", 150)
	wantPage(t, pageOf(t, c, `{"type":"history","id":7,"channel":"many"}`), 7, true, seq(51, 150)...)
	m := pageOf(t, c, `{"type":"history","id":8,"channel":"h","limit":1}`)["messages"].([]any)[0].(map[string]any)
	if m["data"] != "m5" || m["ts"] == nil || m["from"] != nil || m["type"] != nil || m["channel"] != nil {
		t.Fatalf("page message %v, want offset, ts and data only", m)
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// TestHistoryPageFitsSendQueue: a page larger than half the send queue
// keeps its newest messages and says more, instead of overflowing it.
func TestHistoryPageFitsSendQueue(t *testing.T) {
	srv := startServer(t, fastOpts(herald.Options{SendQueueBytes: 8 << 10}))
	big := `"` + strings.Repeat("x", 1000) + `"`
	for range 10 {
		if _, err := srv.Publish(context.Background(), "big", []byte(big), nil); err != nil {
			t.Fatal(err)
		}
	}
	c := heraldtest.DialWelcome(t, srv.url, nil)
	p := pageOf(t, c, `{"type":"history","id":1,"channel":"big","limit":10}`)
	offs := pageOffsets(p)
	if len(offs) == 0 || len(offs) >= 10 || offs[len(offs)-1] != 10 || p["more"] != true {
		t.Fatalf("page of %v more %v; want the newest that fit in 4 KiB, more true", offs, p["more"])
	}
	first := offs[0]
	p = pageOf(t, c, fmt.Sprintf(`{"type":"history","id":2,"channel":"big","limit":10,"before":%d}`, first))
	if offs := pageOffsets(p); len(offs) == 0 || offs[len(offs)-1] != first-1 {
		t.Fatalf("next page %v, want the ones before %d", offs, first)
	}
	stillServing(t, c)
}

// TestHistoryBadRequests: limits and befores out of range or not integers,
// an invalid channel, and channels the connection may not subscribe to are
// each answered with their error, and the connection serves on.
func TestHistoryBadRequests(t *testing.T) {
	srv := jwtServer(t, *fastOpts(herald.Options{Anonymous: herald.AnonymousAllow, Namespaces: map[string]herald.NamespaceOptions{
		"closed":  {Subscribe: herald.AccessNone},
		"members": {Subscribe: herald.AccessUsers},
	}}))
	c := heraldtest.DialWelcome(t, srv.url, nil)
	for i, tc := range []struct{ fields, code string }{
		{`"channel":"h","limit":0`, "bad_request"},
		{`"channel":"h","limit":1001`, "bad_request"},
		{`"channel":"h","limit":-1`, "bad_request"},
		{`"channel":"h","limit":2.5`, "bad_request"},
		{`"channel":"h","limit":"2"`, "bad_request"},
		{`"channel":"h","before":0`, "bad_request"},
		{`"channel":"h","before":-3`, "bad_request"},
		{`"channel":"h","before":1.5`, "bad_request"},
		{`"limit":2`, "bad_request"},
		{`"channel":"bad channel"`, "invalid_channel"},
		{`"channel":"closed:x"`, "forbidden"},
		{`"channel":"members:x"`, "unauthorized"},
	} {
		id := i + 1
		c.Send(t, fmt.Sprintf(`{"type":"history","id":%d,%s}`, id, tc.fields))
		c.ExpectError(t, tc.code, uint64(id))
		stillServing(t, c)
	}
	alice := heraldtest.DialWelcome(t, srv.url, bearer(token(t, jwt.MapClaims{"sub": "alice", "aud": "herald", "channels": []string{"members:a"}})))
	wantPage(t, pageOf(t, alice, `{"type":"history","id":1,"channel":"members:a"}`), 1, false)
	alice.Send(t, `{"type":"history","id":2,"channel":"members:b"}`)
	alice.ExpectError(t, "forbidden", 2)
	stillServing(t, alice)
}

// TestHistoryCostsARateToken: a history request is paid for like any
// other.
func TestHistoryCostsARateToken(t *testing.T) {
	srv := startServer(t, &herald.Options{Rate: 2, Burst: 3})
	c := heraldtest.DialWelcome(t, srv.url, nil)
	for id := 1; id <= 3; id++ {
		pageOf(t, c, fmt.Sprintf(`{"type":"history","id":%d,"channel":"h"}`, id))
	}
	c.Send(t, `{"type":"history","id":4,"channel":"h"}`)
	c.ExpectError(t, "rate_limited", 4)
}

// TestAPIHistory: POST /api/history answers a page with the API's key,
// codes and errors.
func TestAPIHistory(t *testing.T) {
	srv := startAPIServer(t, herald.Options{APIKey: "k"})
	for i := 1; i <= 3; i++ {
		call(t, "POST", srv.api+"/api/publish", "k", fmt.Sprintf(`{"channel":"h","data":{"n":%d}}`, i))
	}
	status, body := call(t, "POST", srv.api+"/api/history", "k", `{"channel":"h","limit":2,"before":3}`)
	if status != 200 || body["offset"] != 3.0 || body["more"] != false || body["epoch"] == "" {
		t.Fatalf("history = %d %v", status, body)
	}
	msgs := body["messages"].([]any)
	if len(msgs) != 2 {
		t.Fatalf("messages %v, want offsets 1 and 2", msgs)
	}
	for i, m := range msgs {
		m := m.(map[string]any)
		if m["offset"] != float64(i+1) || m["ts"] == nil || m["from"] != nil || m["data"].(map[string]any)["n"] != float64(i+1) {
			t.Errorf("message %d = %v", i, m)
		}
	}
	status, body = call(t, "POST", srv.api+"/api/history", "k", `{"channel":"h"}`)
	if status != 200 || len(body["messages"].([]any)) != 3 || body["more"] != false {
		t.Fatalf("history without limit = %d %v", status, body)
	}
	for _, tc := range []struct {
		key, body string
		status    int
		code      string
	}{
		{"wrong", `{"channel":"h"}`, 401, "unauthorized"},
		{"k", `{}`, 400, "bad_request"},
		{"k", `{"channel":"h","limit":0}`, 400, "bad_request"},
		{"k", `{"channel":"h","limit":1001}`, 400, "bad_request"},
		{"k", `{"channel":"h","before":0}`, 400, "bad_request"},
		{"k", `{"channel":"h","before":-1}`, 400, "bad_request"},
		{"k", `{"channel":"bad channel"}`, 400, "invalid_channel"},
	} {
		status, body := call(t, "POST", srv.api+"/api/history", tc.key, tc.body)
		if status != tc.status || body["code"] != tc.code {
			t.Errorf("history %s with key %s = %d %v, want %d %s", tc.body, tc.key, status, body, tc.status, tc.code)
		}
	}
}
