package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/broker/redisbroker"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestRestoredFromSnapshot: Redis killed after a snapshot and restarted
// from it brings the channel back with its epoch and an older offset. The
// broker notices the restore and starts a new epoch, so that no later
// publication reuses an offset subscribers already have: every node is
// delivered the next publication in the new epoch, and a position from
// before the restart is refused.
func TestRestoredFromSnapshot(t *testing.T) {
	r := startRedisRDB(t)
	ctx := context.Background()
	ch := "chat:restored"
	nodes := []*redisbroker.Broker{
		newBroker(t, r, redisbroker.Options{Prefix: "rdb:", Timeout: 300 * time.Millisecond}),
		newBroker(t, r, redisbroker.Options{Prefix: "rdb:", Timeout: 300 * time.Millisecond}),
	}
	recs := make([]*recorder, len(nodes))
	for i, n := range nodes {
		recs[i] = run(t, n)
		if err := n.Subscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	var seen broker.StreamPosition
	for i := range 6 {
		if i == 3 {
			if got := r.Do("SAVE"); got != "+OK" {
				t.Fatalf("SAVE: %s", got)
			}
		}
		seen = publish(t, nodes[0], ch, fmt.Sprint(i+1))
	}
	for _, rec := range recs {
		rec.wait(t, ch, seen) // offsets 4 to 6 reached every node, not the snapshot
	}

	r.Restart() // SIGKILL, then load the snapshot: the stream is back at offset 3
	for _, n := range nodes {
		waitReady(t, n)
	}
	if pos, err := nodes[1].Position(ctx, ch); err != nil || pos.Epoch == seen.Epoch {
		t.Errorf("Position after the restore = %v, %v; want a new epoch (before: %v)", pos, err, seen)
	}
	after := publish(t, nodes[0], ch, `"after"`)
	if after.Epoch == seen.Epoch {
		t.Fatalf("publish after the restore = %v, in the epoch whose offsets up to %d were delivered", after, seen.Offset)
	}
	for i, rec := range recs {
		rec.wait(t, ch, after)
		for _, p := range rec.get(ch)[6:] {
			if p.Epoch == seen.Epoch {
				t.Errorf("node %d: delivered %v/%d after the restore, in the old epoch", i, p.Epoch, p.Offset)
			}
		}
	}
	for _, since := range []uint64{seen.Offset, 3, 0} {
		old := broker.StreamPosition{Epoch: seen.Epoch, Offset: since}
		if pubs, _, err := nodes[1].History(ctx, ch, old, 0); !errors.Is(err, broker.ErrUnrecoverable) {
			t.Errorf("History since %v after the restore = %d publications, %v; want ErrUnrecoverable", old, len(pubs), err)
		}
	}
}

// TestServeRestoredFromSnapshot: the same restore seen by WebSocket
// clients on two nodes: each subscriber is closed with 1012 by the first
// publication after it, and its resubscribe with the position it had is
// answered recovered:false.
func TestServeRestoredFromSnapshot(t *testing.T) {
	r := startRedisRDB(t)
	const channel = "chat:restored-ws"
	nodes := []*node{startNode(t, r, "rdbws:"), startNode(t, r, "rdbws:")}
	var subs []*heraldtest.Conn
	var epoch string
	for _, n := range nodes {
		for range 2 {
			c := heraldtest.DialWelcome(t, n.URL(), nil)
			epoch = c.Subscribe(t, 1, channel, nil).Epoch
			subs = append(subs, c)
		}
	}
	pub := heraldtest.DialWelcome(t, nodes[0].URL(), nil)
	for i := uint64(1); i <= 6; i++ {
		if i == 4 {
			if got := r.Do("SAVE"); got != "+OK" {
				t.Fatalf("SAVE: %s", got)
			}
		}
		f, err := pub.Publish(i, channel, fmt.Sprintf(`{"n":%d}`, i), "")
		if err != nil || f.Type != "published" || f.Offset != i {
			t.Fatalf("publish %d: %+v, %v", i, f, err)
		}
		for _, s := range subs {
			if m := s.Expect(t, "message"); m.Offset != i {
				t.Fatalf("delivered offset %d, want %d", m.Offset, i)
			}
		}
	}

	r.Restart()
	for _, n := range nodes {
		waitNodeReady(t, n)
	}
	f, err := pub.Publish(7, channel, `{"n":7}`, "")
	if err != nil || f.Type != "published" {
		t.Fatalf("publish after the restore: %+v, %v", f, err)
	}
	if f.Offset != 1 {
		t.Errorf("publish after the restore answered offset %d, want 1 of a new epoch", f.Offset)
	}
	for i, s := range subs {
		if code := s.ExpectClose(t, 5*time.Second); code != 1012 {
			t.Errorf("subscriber %d: close %d, want 1012", i, code)
		}
	}
	again := heraldtest.DialWelcome(t, nodes[1].URL(), nil)
	reply := again.Subscribe(t, 1, channel, &heraldtest.Frame{Epoch: epoch, Offset: 6})
	if reply.Recovered == nil || *reply.Recovered || reply.Epoch == epoch {
		t.Errorf("resubscribe since %s/6 after the restore: %+v, want recovered:false in a new epoch", epoch, reply)
	}
}

// waitNodeReady waits until n's /readyz answers 200.
func waitNodeReady(t *testing.T, n *node) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.ready(t) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("node not ready 10s after Redis came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestQuietStreamsExpire: subscribing to, or reading, channels nobody
// publishes to leaves nothing in Redis beyond the history TTL; a channel a
// node subscribes to keeps its epoch however long it stays quiet, so its
// first publication continues the position subscribers were given; a
// channel published to keeps its stream for StreamTTL.
func TestQuietStreamsExpire(t *testing.T) {
	const historyTTL = 300 * time.Millisecond
	r := startRedis(t)
	b := newBroker(t, r, redisbroker.Options{Prefix: "q:", History: broker.HistoryOptions{TTL: historyTTL}})
	ctx := context.Background()
	for i := range 300 {
		ch := fmt.Sprintf("quiet:%d", i)
		if err := b.Subscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Position(ctx, ch); err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.History(ctx, ch, broker.StreamPosition{}, 0); !errors.Is(err, broker.ErrUnrecoverable) {
			t.Fatal(err)
		}
		if err := b.Unsubscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	if ttl := r.Do("PTTL", "q:stream:{quiet:7}"); ttl == ":-1" || len(ttl) > len(":300") {
		t.Errorf("PTTL of a quiet channel's stream = %s ms, want at most the history TTL %v", ttl, historyTTL)
	}

	held, published := "held:quiet", "held:published"
	for _, ch := range []string{held, published} {
		if err := b.Subscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	heldPos, err := b.Position(ctx, held)
	if err != nil {
		t.Fatal(err)
	}
	pubPos := publish(t, b, published, `1`)
	time.Sleep(4 * historyTTL)
	if got := r.Do("DBSIZE"); got != ":2" {
		t.Errorf("DBSIZE 4 history TTLs later = %s, want :2 (the streams of the subscribed channels)", got)
	}
	if pos := publish(t, b, held, `1`); pos.Epoch != heldPos.Epoch || pos.Offset != 1 {
		t.Errorf("first publish on a quiet subscribed channel after 4 history TTLs = %v, want %s/1", pos, heldPos.Epoch)
	}
	if pos, err := b.Position(ctx, published); err != nil || pos != pubPos {
		t.Errorf("Position of a published channel after 4 history TTLs = %v, %v; want %v", pos, err, pubPos)
	}
	if err := b.Unsubscribe(ctx, published); err != nil {
		t.Fatal(err)
	}
	if ttl := r.Do("PTTL", "q:stream:{"+published+"}"); len(ttl) <= len(":300") {
		t.Errorf("PTTL of a published channel's stream = %s ms, want the stream TTL", ttl)
	}
}
