package redisbroker_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/broker/redisbroker"
	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
)

// startPresenceNode starts a node of the service prefix with presence and
// join-leave on in every namespace, and a presence TTL of ttl.
func startPresenceNode(t *testing.T, r *redisServer, prefix string, ttl time.Duration) (*testnode.Node, *redisbroker.Broker) {
	t.Helper()
	b := newBroker(t, r, redisbroker.Options{Prefix: prefix, PresenceTTL: ttl})
	n := testnode.Start(t, herald.Options{
		Broker:     b,
		Logger:     slog.New(slog.DiscardHandler),
		Namespaces: map[string]herald.NamespaceOptions{herald.AnyNamespace: {Presence: true, JoinLeave: true}},
	})
	t.Cleanup(func() { n.Kill(); b.Close() })
	return n, b
}

// session dials url and returns the connection and its session id.
func session(t *testing.T, url string) (*heraldtest.Conn, string) {
	t.Helper()
	c := heraldtest.MustDial(t, url, nil)
	return c, c.Expect(t, "welcome").Fields()["session"].(string)
}

// clients asks c for channel's presence and returns the members' client
// ids, sorted, after checking that the count agrees.
func clients(t *testing.T, c *heraldtest.Conn, id int, channel string) []string {
	t.Helper()
	c.Send(t, fmt.Sprintf(`{"type":"presence","id":%d,"channel":%q}`, id, channel))
	p := c.Expect(t, "present").Fields()
	var ids []string
	for _, m := range p["members"].([]any) {
		ids = append(ids, m.(map[string]any)["client"].(string))
	}
	slices.Sort(ids)
	if p["clients"] != float64(len(ids)) {
		t.Fatalf("present = %v: count and members disagree", p)
	}
	return ids
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// expectMember reads the next frame of c: typ of member on channel.
func expectMember(t *testing.T, c *heraldtest.Conn, typ, channel, member string) {
	t.Helper()
	f := c.Expect(t, typ).Fields()
	if f["channel"] != channel || f["member"].(map[string]any)["client"] != member {
		t.Fatalf("%s = %v, want member %s on %s", typ, f, member, channel)
	}
}

// TestPresenceTwoNodes runs two servers on one Redis: presence counts the
// members of both, join and leave cross nodes, and a node that shuts down
// gracefully removes its members at once and announces their leave.
func TestPresenceTwoNodes(t *testing.T) {
	r := startRedis(t)
	const ch = "chat:nodes"
	a, _ := startPresenceNode(t, r, "presence2:", 0)
	b, _ := startPresenceNode(t, r, "presence2:", 0)

	a1, a1ID := session(t, a.URL())
	a1.Subscribe(t, 1, ch, nil)
	b1, b1ID := session(t, b.URL())
	b1.Subscribe(t, 1, ch, nil)
	expectMember(t, a1, "join", ch, b1ID) // B's join reaches A
	b2, b2ID := session(t, b.URL())
	b2.Subscribe(t, 1, ch, nil)
	expectMember(t, a1, "join", ch, b2ID)
	expectMember(t, b1, "join", ch, b2ID)

	if got, want := clients(t, a1, 2, ch), sorted(a1ID, b1ID, b2ID); !slices.Equal(got, want) {
		t.Fatalf("presence on A: %v, want %v", got, want)
	}
	a2, a2ID := session(t, a.URL())
	a2.Subscribe(t, 1, ch, nil)
	expectMember(t, b1, "join", ch, a2ID) // A's join reaches B
	expectMember(t, b2, "join", ch, a2ID)
	expectMember(t, a1, "join", ch, a2ID)

	b1.Send(t, `{"type":"unsubscribe","id":3,"channel":"chat:nodes"}`)
	b1.Expect(t, "unsubscribed")
	expectMember(t, a1, "leave", ch, b1ID)
	expectMember(t, a2, "leave", ch, b1ID)
	if got, want := clients(t, b1, 4, ch), sorted(a1ID, a2ID, b2ID); !slices.Equal(got, want) {
		t.Fatalf("presence on B: %v, want %v", got, want)
	}

	// B shuts down: its member leaves at once, announced on A.
	b.Shutdown()
	expectMember(t, a1, "leave", ch, b2ID)
	expectMember(t, a2, "leave", ch, b2ID)
	if got, want := clients(t, a1, 5, ch), sorted(a1ID, a2ID); !slices.Equal(got, want) {
		t.Fatalf("presence after B's shutdown: %v, want %v", got, want)
	}
}

// TestPresenceNodeKilled kills a "herald serve" process with SIGKILL: its
// members stay while their expiry (--presence-ttl) runs, then vanish from
// the presence the other node answers, while the survivor's own member,
// refreshed by its node, stays.
func TestPresenceNodeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the herald binary")
	}
	r := startRedis(t)
	bin, err := heraldtest.BuildHerald(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 3 * time.Second
	url := "redis://" + r.addr + "/4"
	flags := []string{"--presence", "--join-leave", "--presence-ttl", ttl.String()}
	a, b := startServe(t, bin, url, flags...), startServe(t, bin, url, flags...)
	a.waitReady(t, http.StatusOK)
	b.waitReady(t, http.StatusOK)

	const ch = "chat:killed"
	survivor, survivorID := session(t, a.ws)
	survivor.Subscribe(t, 1, ch, nil)
	doomed, doomedID := session(t, b.ws)
	doomed.Subscribe(t, 1, ch, nil)
	expectMember(t, survivor, "join", ch, doomedID)

	b.cmd.Process.Kill() // SIGKILL: no leave, no removal
	b.cmd.Wait()
	killed := time.Now()
	if got := clients(t, survivor, 2, ch); !slices.Equal(got, sorted(survivorID, doomedID)) {
		t.Fatalf("presence right after the kill: %v, want both (the expiry has not run)", got)
	}
	for id := 3; ; id++ {
		got := clients(t, survivor, id, ch)
		if slices.Equal(got, []string{survivorID}) {
			break
		}
		if time.Since(killed) > ttl+2*time.Second {
			t.Fatalf("presence %v after the kill, want the killed node's member gone within %v", time.Since(killed), ttl)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the killed node's member vanished %v after the kill (TTL %v)", time.Since(killed).Round(time.Millisecond), ttl)
	// The survivor's node keeps refreshing its member past several TTLs.
	time.Sleep(ttl + time.Second)
	if got := clients(t, survivor, 100, ch); !slices.Equal(got, []string{survivorID}) {
		t.Fatalf("presence %v later: %v, want the survivor, refreshed by its node", time.Since(killed), got)
	}
}

// TestPresenceMemoryPerMember holds what a node keeps of its own members
// (to refresh them) within 300 bytes per member, over 10,000 members.
func TestPresenceMemoryPerMember(t *testing.T) {
	r := startRedis(t)
	b := newBroker(t, r, redisbroker.Options{})
	const n = 10_000
	members := make([]broker.Member, n)
	for i := range members {
		members[i] = broker.Member{Client: fmt.Sprintf("s_%08X", i), User: fmt.Sprintf("user%d", i%5000)}
	}
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	for i, m := range members {
		if err := b.Join(t.Context(), fmt.Sprintf("chat:room%d", i%100), m, 1000); err != nil {
			t.Fatal(err)
		}
	}
	per := float64(int64(heap())-int64(before)) / n
	runtime.KeepAlive(members)
	t.Logf("Redis broker: %.0f bytes per presence member on the node", per)
	if per > 300 {
		t.Errorf("a presence member costs the node %.0f bytes, want at most 300", per)
	}
}
