package herald_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// presenceOptions turn presence on in chat (with join-leave) and quiet
// (without), and lock subscribing in locked.
func presenceOptions() herald.Options {
	return herald.Options{
		Anonymous: herald.AnonymousAllow,
		Namespaces: map[string]herald.NamespaceOptions{
			"chat":   {Presence: true, JoinLeave: true},
			"quiet":  {Presence: true},
			"locked": {Presence: true, JoinLeave: true, Subscribe: herald.AccessNone},
		},
	}
}

// dialUser connects as user ("" for anonymous) and returns the connection
// and its session id.
func dialUser(t *testing.T, srv *testServer, user string) (*heraldtest.Conn, string) {
	t.Helper()
	var o *heraldtest.DialOptions
	if user != "" {
		o = bearer(token(t, jwt.MapClaims{"sub": user, "aud": "herald"}))
	}
	c := heraldtest.MustDial(t, srv.url, o)
	w := c.Expect(t, "welcome").Fields()
	return c, w["session"].(string)
}

// present asks for channel's presence and returns the reply.
func present(t *testing.T, c *heraldtest.Conn, id int, channel string, countOnly bool) map[string]any {
	t.Helper()
	c.Send(t, fmt.Sprintf(`{"type":"presence","id":%d,"channel":%q,"count_only":%v}`, id, channel, countOnly))
	p := c.Expect(t, "present").Fields()
	if p["id"] != float64(id) || p["channel"] != channel {
		t.Fatalf("present = %v, want id %d channel %s", p, id, channel)
	}
	return p
}

// memberList returns the members of a present frame as "client/user",
// sorted.
func memberList(p map[string]any) []string {
	var list []string
	ms, _ := p["members"].([]any)
	for _, m := range ms {
		m := m.(map[string]any)
		user, _ := m["user"].(string)
		list = append(list, m["client"].(string)+"/"+user)
	}
	slices.Sort(list)
	return list
}

// expectEvent reads the next frame, which must be a join or leave of
// member (client/user) on channel.
func expectEvent(t *testing.T, c *heraldtest.Conn, typ, channel, member string) {
	t.Helper()
	f := c.Expect(t, typ).Fields()
	m, _ := f["member"].(map[string]any)
	user, _ := m["user"].(string)
	if f["channel"] != channel || fmt.Sprint(m["client"], "/", user) != member {
		t.Fatalf("%s = %v, want channel %s member %s", typ, f, channel, member)
	}
	if _, ok := f["offset"]; ok {
		t.Errorf("%s carries an offset: %v", typ, f)
	}
}

// expectPong checks that the next frame is the pong of a ping: nothing
// (no join or leave) was queued before it.
func expectPong(t *testing.T, c *heraldtest.Conn, id int) {
	t.Helper()
	c.Send(t, fmt.Sprintf(`{"type":"ping","id":%d}`, id))
	if p := c.Expect(t, "pong").Fields(); p["id"] != float64(id) {
		t.Fatalf("pong = %v, want id %d", p, id)
	}
}

func TestPresenceMembersJoinLeave(t *testing.T) {
	srv := jwtServer(t, presenceOptions())
	const ch = "chat:room"
	a, aID := dialUser(t, srv, "alice")
	a2, a2ID := dialUser(t, srv, "alice")
	b, bID := dialUser(t, srv, "bob")
	c, cID := dialUser(t, srv, "")

	if p := present(t, a, 1, ch, false); p["clients"] != 0.0 || p["users"] != 0.0 || len(memberList(p)) != 0 {
		t.Fatalf("empty channel: %v", p)
	}
	a.Subscribe(t, 2, ch, nil)
	if p := present(t, a, 3, ch, false); p["clients"] != 1.0 || p["users"] != 1.0 || !slices.Equal(memberList(p), []string{aID + "/alice"}) {
		t.Fatalf("after a subscribed: %v", p)
	}
	b.Subscribe(t, 2, ch, nil)
	expectEvent(t, a, "join", ch, bID+"/bob")
	expectPong(t, b, 3) // not told of its own join

	// A resubscribe of a held channel sends no second join.
	b.Subscribe(t, 4, ch, nil)
	expectPong(t, a, 4)

	c.Subscribe(t, 2, ch, nil)
	expectEvent(t, a, "join", ch, cID+"/")
	expectEvent(t, b, "join", ch, cID+"/")
	a2.Subscribe(t, 2, ch, nil)
	for _, x := range []*heraldtest.Conn{a, b, c} {
		expectEvent(t, x, "join", ch, a2ID+"/alice")
	}

	p := present(t, c, 3, ch, false)
	want := []string{a2ID + "/alice", aID + "/alice", bID + "/bob", cID + "/"}
	slices.Sort(want)
	if p["clients"] != 4.0 || p["users"] != 2.0 || !slices.Equal(memberList(p), want) || p["truncated"] != nil {
		t.Fatalf("present = %v, want 4 clients, 2 users, members %v", p, want)
	}
	p = present(t, c, 4, ch, true)
	if p["clients"] != 4.0 || p["users"] != 2.0 || p["members"] != nil {
		t.Fatalf("count_only: %v", p)
	}

	// Unsubscribe, close and a close without handshake each leave.
	b.Send(t, `{"type":"unsubscribe","id":5,"channel":"chat:room"}`)
	b.Expect(t, "unsubscribed")
	for _, x := range []*heraldtest.Conn{a, c, a2} {
		expectEvent(t, x, "leave", ch, bID+"/bob")
	}
	c.Close()
	for _, x := range []*heraldtest.Conn{a, a2} {
		expectEvent(t, x, "leave", ch, cID+"/")
	}
	expectPong(t, b, 6) // no longer subscribed: told nothing
	if p := present(t, b, 7, ch, false); p["clients"] != 2.0 || p["users"] != 1.0 {
		t.Fatalf("after two left: %v", p)
	}
}

func TestPresenceWithoutJoinLeave(t *testing.T) {
	srv := startServer(t, &herald.Options{Namespaces: presenceOptions().Namespaces})
	a := heraldtest.DialWelcome(t, srv.url, nil)
	b := heraldtest.DialWelcome(t, srv.url, nil)
	a.Subscribe(t, 1, "quiet:x", nil)
	b.Subscribe(t, 1, "quiet:x", nil)
	b.Send(t, `{"type":"unsubscribe","id":2,"channel":"quiet:x"}`)
	b.Expect(t, "unsubscribed")
	expectPong(t, a, 2) // no join, no leave
	if p := present(t, a, 3, "quiet:x", false); p["clients"] != 1.0 || p["users"] != 0.0 {
		t.Fatalf("present = %v, want a alone", p)
	}
}

func TestPresenceBadRequests(t *testing.T) {
	srv := startServer(t, &herald.Options{Namespaces: presenceOptions().Namespaces})
	c := heraldtest.DialWelcome(t, srv.url, nil)
	for _, tc := range []struct{ req, code, msg string }{
		{`{"type":"presence","id":1,"channel":"news"}`, "bad_request", "presence is off for this namespace"},
		{`{"type":"presence","id":1,"channel":"news:x","count_only":true}`, "bad_request", "presence is off for this namespace"},
		{`{"type":"presence","id":1,"channel":"locked:x"}`, "forbidden", "subscribe to locked:x is not allowed"},
		{`{"type":"presence","id":1,"channel":"chat:bad channel"}`, "invalid_channel", ""},
		{`{"type":"presence","id":1}`, "bad_request", `presence: missing field "channel"`},
		{`{"type":"presence","id":1,"channel":"chat:x","count_only":"yes"}`, "bad_request", ""},
	} {
		c.Send(t, tc.req)
		e := c.ExpectError(t, tc.code, 1).Fields()
		if tc.msg != "" && e["message"] != tc.msg {
			t.Errorf("%s: message %q, want %q", tc.req, e["message"], tc.msg)
		}
	}
	// The connection still serves.
	c.Subscribe(t, 2, "chat:x", nil)
	if p := present(t, c, 3, "chat:x", false); p["clients"] != 1.0 {
		t.Fatalf("present = %v", p)
	}
}

func TestPresenceHeartbeatLeave(t *testing.T) {
	opts := presenceOptions()
	opts.PingInterval, opts.PongTimeout = 100*time.Millisecond, 100*time.Millisecond
	srv := startServer(t, &opts)
	alive := heraldtest.DialWelcome(t, srv.url, nil)
	dead, deadID := dialUser(t, srv, "")
	alive.Subscribe(t, 1, "chat:hb", nil)
	dead.Subscribe(t, 1, "chat:hb", nil)
	alive.Expect(t, "join")
	dead.IgnorePings = true
	// alive answers pings while it waits for the leave.
	f := alive.Expect(t, "leave").Fields()
	if m := f["member"].(map[string]any); m["client"] != deadID {
		t.Fatalf("leave = %v, want %s", f, deadID)
	}
	if p := present(t, alive, 2, "chat:hb", false); p["clients"] != 1.0 {
		t.Fatalf("present = %v, want alive alone", p)
	}
}

func TestPresenceTruncated(t *testing.T) {
	srv := startServer(t, &herald.Options{Namespaces: presenceOptions().Namespaces, MaxConnections: 2000})
	const n = 1001
	var first *heraldtest.Conn
	for i := range n {
		c := heraldtest.DialWelcome(t, srv.url, nil)
		c.Subscribe(t, 1, "quiet:crowd", nil)
		if i == 0 {
			first = c
		}
	}
	p := present(t, first, 2, "quiet:crowd", false)
	if p["clients"] != float64(n) || len(memberList(p)) != 1000 || p["truncated"] != true {
		t.Fatalf("present: clients %v, %d members, truncated %v; want %d, 1000, true", p["clients"], len(memberList(p)), p["truncated"], n)
	}
	if strings.Count(fmt.Sprint(memberList(p)), "s_") != 1000 {
		t.Fatal("members without client ids")
	}
}

func TestAPIPresence(t *testing.T) {
	opts := presenceOptions()
	opts.APIKey = "k3y"
	srv := startAPIServer(t, opts)
	c, cID := dialUser(t, srv.testServer, "")
	c.Subscribe(t, 1, "chat:api", nil)

	status, body := call(t, "POST", srv.api+"/api/presence", "k3y", `{"channel":"chat:api"}`)
	if status != 200 || body["clients"] != 1.0 || body["users"] != 0.0 || !slices.Equal(memberList(body), []string{cID + "/"}) {
		t.Fatalf("presence: %d %v", status, body)
	}
	status, body = call(t, "POST", srv.api+"/api/presence", "k3y", `{"channel":"chat:api","count_only":true}`)
	if status != 200 || body["clients"] != 1.0 || body["members"] != nil {
		t.Fatalf("count_only: %d %v", status, body)
	}
	for _, tc := range []struct {
		key, body string
		status    int
		code      string
	}{
		{"k3y", `{"channel":"news:x"}`, 400, "bad_request"},
		{"k3y", `{"channel":"bad channel"}`, 400, "invalid_channel"},
		{"k3y", `{}`, 400, "bad_request"},
		{"k3y", `{"channel":"chat:api","count_only":"yes"}`, 400, "bad_request"},
		{"wrong", `{"channel":"chat:api"}`, 401, "unauthorized"},
	} {
		if status, body := call(t, "POST", srv.api+"/api/presence", tc.key, tc.body); status != tc.status || body["code"] != tc.code {
			t.Errorf("%s: %d %v, want %d %s", tc.body, status, body, tc.status, tc.code)
		}
	}
}
