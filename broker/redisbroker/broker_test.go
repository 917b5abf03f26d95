package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/broker/redisbroker"
)

// recorder collects the publications a broker's Run delivers.
type recorder struct {
	mu      sync.Mutex
	pubs    map[string][]broker.Publication
	changed chan struct{}
}

// run runs b with a recorder until the test ends.
func run(t *testing.T, b broker.Broker) *recorder {
	rec := &recorder{pubs: make(map[string][]broker.Publication), changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Run(ctx, rec.deliver)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return rec
}

func (r *recorder) deliver(p broker.Publication) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pubs[p.Channel] = append(r.pubs[p.Channel], p)
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) get(ch string) []broker.Publication {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]broker.Publication(nil), r.pubs[ch]...)
}

// wait waits until pos was delivered on ch.
func (r *recorder) wait(t *testing.T, ch string, pos broker.StreamPosition) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		list, changed := r.pubs[ch], r.changed
		r.mu.Unlock()
		for _, p := range list {
			if p.Epoch == pos.Epoch && p.Offset == pos.Offset {
				return
			}
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("%s: %v not delivered within 10s (got %d publications)", ch, pos, len(list))
		}
	}
}

func publish(t *testing.T, b broker.Broker, ch, data string) broker.StreamPosition {
	t.Helper()
	pos, err := b.Publish(context.Background(), ch, []byte(data), broker.PublishOptions{})
	if err != nil {
		t.Fatalf("Publish(%s): %v", ch, err)
	}
	return pos
}

// waitReady waits until Check succeeds.
func waitReady(t *testing.T, b *redisbroker.Broker) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := b.Check(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Check still fails 10s after Redis came back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRedisDown: while Redis is down every call fails quickly with
// ErrUnavailable and Check reports it; when Redis is back (empty, as after
// a restart without persistence) the broker resubscribes on its own, the
// channel starts a new epoch and old positions are refused.
func TestRedisDown(t *testing.T) {
	const timeout = 300 * time.Millisecond
	r := startRedis(t)
	b := newBroker(t, r, redisbroker.Options{Timeout: timeout})
	rec := run(t, b)
	ctx := context.Background()
	ch := "chat:down"
	if err := b.Subscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
	before := publish(t, b, ch, `"before"`)
	rec.wait(t, ch, before)

	r.Stop()
	calls := map[string]func() error{
		"Publish": func() error {
			_, err := b.Publish(ctx, ch, []byte(`"while down"`), broker.PublishOptions{Key: "k"})
			return err
		},
		"Position": func() error { _, err := b.Position(ctx, ch); return err },
		"History": func() error {
			_, _, err := b.History(ctx, ch, before, 0)
			return err
		},
		"Subscribe": func() error { return b.Subscribe(ctx, "chat:other") },
		"Check":     func() error { return b.Check(ctx) },
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if !errors.Is(err, broker.ErrUnavailable) {
			t.Errorf("%s with Redis down: %v, want ErrUnavailable", name, err)
		}
		if d := time.Since(start); d > 3*timeout {
			t.Errorf("%s with Redis down took %v, want at most %v", name, d, 3*timeout)
		}
	}

	r.Restart()
	waitReady(t, b)
	after := publish(t, b, ch, `"after"`)
	if after.Epoch == before.Epoch || after.Offset != 1 {
		t.Errorf("first publish after Redis lost the stream = %v, want a new epoch at offset 1 (was %v)", after, before)
	}
	// Once ready, no call fails on a connection Redis closed when it
	// stopped.
	for i := range 20 {
		if _, err := b.Publish(ctx, "chat:again", []byte(`1`), broker.PublishOptions{}); err != nil {
			t.Fatalf("publish %d after Redis came back: %v", i, err)
		}
	}
	rec.wait(t, ch, after) // resubscribed without being asked
	_, pos, err := b.History(ctx, ch, before, 0)
	if !errors.Is(err, broker.ErrUnrecoverable) || pos != after {
		t.Errorf("History since the old position = %v, %v; want %v, ErrUnrecoverable", pos, err, after)
	}
	// The failed Subscribe left the channel in the node's set, until
	// Unsubscribe.
	rec.wait(t, "chat:other", publish(t, b, "chat:other", `1`))
	if err := b.Unsubscribe(ctx, "chat:other"); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "chat:other", `2`)
	rec.wait(t, ch, publish(t, b, ch, `"marker"`))
	if got := rec.get("chat:other"); len(got) != 1 {
		t.Errorf("delivered %d publications of chat:other, want 1 (none after Unsubscribe)", len(got))
	}
}

// TestRedisUnresponsive: a Redis that accepts connections but does not
// answer (stopped with SIGSTOP) makes calls fail within the timeout instead
// of hanging; when it answers again the broker serves again.
func TestRedisUnresponsive(t *testing.T) {
	const timeout = 300 * time.Millisecond
	r := startRedis(t)
	b := newBroker(t, r, redisbroker.Options{Timeout: timeout})
	rec := run(t, b)
	ctx := context.Background()
	ch := "chat:stopped"
	if err := b.Subscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, ch, publish(t, b, ch, `1`))

	r.Signal(syscall.SIGSTOP)
	start := time.Now()
	_, err := b.Publish(ctx, ch, []byte(`2`), broker.PublishOptions{Key: "two"})
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Publish to a stopped Redis: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*timeout {
		t.Errorf("Publish to a stopped Redis took %v, want at most %v", d, 3*timeout)
	}
	if err := b.Check(ctx); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Check with Redis stopped: %v, want ErrUnavailable", err)
	}
	r.Signal(syscall.SIGCONT)

	// The publish that timed out may have been made once Redis resumed: a
	// retry with its key makes it exactly once either way.
	waitReady(t, b)
	two, err := b.Publish(ctx, ch, []byte(`2`), broker.PublishOptions{Key: "two"})
	if err != nil || two.Offset != 2 {
		t.Fatalf("retried Publish = %v, %v; want offset 2", two, err)
	}
	three := publish(t, b, ch, `3`)
	rec.wait(t, ch, three)
}

// TestSubscribedStreamKept: the stream of a channel some node subscribes
// to outlives StreamTTL however quiet it is; an unsubscribed quiet channel
// is forgotten after it and starts a new epoch.
func TestSubscribedStreamKept(t *testing.T) {
	const streamTTL = 400 * time.Millisecond
	r := startRedis(t)
	b := newBroker(t, r, redisbroker.Options{StreamTTL: streamTTL, History: broker.HistoryOptions{TTL: 100 * time.Millisecond}})
	ctx := context.Background()
	kept, dropped := "chat:kept", "chat:dropped"
	if err := b.Subscribe(ctx, kept); err != nil {
		t.Fatal(err)
	}
	keptPos := publish(t, b, kept, `1`)
	droppedPos := publish(t, b, dropped, `1`)
	time.Sleep(3 * streamTTL)
	if pos, err := b.Position(ctx, kept); err != nil || pos != keptPos {
		t.Errorf("subscribed channel after 3 stream TTLs: %v, %v; want %v", pos, err, keptPos)
	}
	if pos, err := b.Position(ctx, dropped); err != nil || pos.Epoch == droppedPos.Epoch || pos.Offset != 0 {
		t.Errorf("quiet unsubscribed channel after 3 stream TTLs: %v, %v; want a new epoch at 0 (was %v)", pos, err, droppedPos)
	}
}

// TestIsolation: brokers with another prefix, or on another database,
// share neither streams nor deliveries, though Redis pub/sub ignores
// databases.
func TestIsolation(t *testing.T) {
	r := startRedis(t)
	ctx := context.Background()
	ch := "chat:isolated"
	a := newBroker(t, r, redisbroker.Options{Prefix: "iso:", DB: 1})
	others := map[string]*redisbroker.Broker{
		"another prefix":   newBroker(t, r, redisbroker.Options{Prefix: "other:", DB: 1}),
		"another database": newBroker(t, r, redisbroker.Options{Prefix: "iso:", DB: 2}),
	}
	recs := make(map[string]*recorder)
	for name, o := range others {
		recs[name] = run(t, o)
		if err := o.Subscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	recA := run(t, a)
	if err := a.Subscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
	pos := publish(t, a, ch, `"a"`)
	recA.wait(t, ch, pos)
	for name, o := range others {
		mark := publish(t, o, ch, `"mark"`)
		recs[name].wait(t, ch, mark)
		if got := recs[name].get(ch); len(got) != 1 {
			t.Errorf("%s: delivered %d publications, want only its own", name, len(got))
		}
		if mark.Epoch == pos.Epoch || mark.Offset != 1 {
			t.Errorf("%s: its first publish = %v, want its own stream (a's is at %v)", name, mark, pos)
		}
	}
}

// TestNodesShareStreams: two brokers on one Redis are one service: one
// stream per channel, idempotency keys honoured across nodes, deliveries
// to both.
func TestNodesShareStreams(t *testing.T) {
	r := startRedis(t)
	ctx := context.Background()
	a := newBroker(t, r, redisbroker.Options{Prefix: "shared:"})
	b := newBroker(t, r, redisbroker.Options{Prefix: "shared:"})
	recA, recB := run(t, a), run(t, b)
	ch := "chat:shared"
	for _, n := range []*redisbroker.Broker{a, b} {
		if err := n.Subscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	first, err := a.Publish(ctx, ch, []byte(`"x"`), broker.PublishOptions{Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	retry, err := b.Publish(ctx, ch, []byte(`"x"`), broker.PublishOptions{Key: "k"})
	if err != nil || retry != first {
		t.Errorf("retry on the other node = %v, %v; want %v", retry, err, first)
	}
	second := publish(t, b, ch, `"y"`)
	if second.Epoch != first.Epoch || second.Offset != first.Offset+1 {
		t.Errorf("publish on the other node = %v after %v", second, first)
	}
	for name, rec := range map[string]*recorder{"a": recA, "b": recB} {
		rec.wait(t, ch, second)
		if got := rec.get(ch); len(got) != 2 {
			t.Errorf("node %s: delivered %d publications, want 2", name, len(got))
		}
	}
}

// TestNamespaces: a namespace's history bounds apply to its channels only.
func TestNamespaces(t *testing.T) {
	r := startRedis(t)
	b := newBroker(t, r, redisbroker.Options{
		History:    broker.HistoryOptions{Size: 10},
		Namespaces: map[string]broker.HistoryOptions{"short": {Size: 2}},
	})
	ctx := context.Background()
	for _, tc := range []struct {
		ch   string
		kept int
	}{{"short:x", 2}, {"long:x", 5}} {
		var pos broker.StreamPosition
		for i := range 5 {
			pos = publish(t, b, tc.ch, fmt.Sprint(i))
		}
		oldest := pos.Offset - uint64(tc.kept)
		if _, _, err := b.History(ctx, tc.ch, broker.StreamPosition{Epoch: pos.Epoch, Offset: oldest}, 0); err != nil {
			t.Errorf("%s: History since %d: %v", tc.ch, oldest, err)
		}
		if oldest > 0 {
			if _, _, err := b.History(ctx, tc.ch, broker.StreamPosition{Epoch: pos.Epoch, Offset: oldest - 1}, 0); !errors.Is(err, broker.ErrUnrecoverable) {
				t.Errorf("%s: History since %d: %v, want ErrUnrecoverable", tc.ch, oldest-1, err)
			}
		}
	}
}

// TestNew: a Redis that is not there fails New quickly with
// ErrUnavailable; a malformed URL or a database Redis refuses fails with
// another error.
func TestNew(t *testing.T) {
	r := startRedis(t)
	if _, err := redisbroker.New(context.Background(), redisbroker.Options{Addr: r.addr, DB: 999}); err == nil || errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("New with database 999: %v, want Redis's refusal", err)
	}

	addr := freeAddr(t)
	start := time.Now()
	_, err := redisbroker.New(context.Background(), redisbroker.Options{Addr: addr, Timeout: 200 * time.Millisecond})
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("New with nothing at %s: %v, want ErrUnavailable", addr, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("New with nothing at %s took %v", addr, d)
	}
	for _, url := range []string{"http://127.0.0.1:6379", "redis://127.0.0.1:6379/x"} {
		if _, err := redisbroker.New(context.Background(), redisbroker.Options{URL: url}); err == nil || errors.Is(err, broker.ErrUnavailable) {
			t.Errorf("New with URL %s: %v, want a usage error", url, err)
		}
	}
}
