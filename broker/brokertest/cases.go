package brokertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker"
)

// testEmptyChannel: a channel never used is at offset 0 of an epoch that
// its first publication continues.
func testEmptyChannel(t *testing.T, newBroker Factory) {
	h := start(t, newBroker, broker.HistoryOptions{})
	ch := h.channel("empty")
	pos := h.position(ch)
	if pos.Epoch == "" || pos.Offset != 0 {
		t.Fatalf("Position of an unused channel = %v, want an epoch and offset 0", pos)
	}
	if again := h.position(ch); again != pos {
		t.Errorf("Position changed from %v to %v with no publication", pos, again)
	}
	pubs, cur, err := h.history(ch, pos, 0)
	if err != nil || len(pubs) != 0 || cur != pos {
		t.Errorf("History since the current position = %d publications, %v, %v; want none, %v, nil", len(pubs), cur, err, pos)
	}
	if got := h.publish(ch, `"first"`, ""); got != (broker.StreamPosition{Epoch: pos.Epoch, Offset: 1}) {
		t.Errorf("first Publish = %v, want %s/1", got, pos.Epoch)
	}
}

// testConcurrentPublishers: offsets grow by exactly one, whoever publishes,
// and are delivered in order, each once.
func testConcurrentPublishers(t *testing.T, newBroker Factory) {
	const workers, each = 8, 100
	h := start(t, newBroker, broker.HistoryOptions{Size: workers * each})
	ch := h.channel("concurrent")
	h.subscribe(ch)
	epoch := h.position(ch).Epoch

	var mu sync.Mutex
	byOffset := make(map[uint64]string)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var last uint64
			for i := range each {
				data := fmt.Sprintf(`"w%d-%d"`, w, i)
				pos, err := h.b.Publish(context.Background(), ch, []byte(data), broker.PublishOptions{})
				if err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				if pos.Epoch != epoch || pos.Offset <= last {
					t.Errorf("publisher %d: Publish = %v after offset %d, want epoch %s and a greater offset", w, pos, last, epoch)
				}
				last = pos.Offset
				mu.Lock()
				if prev, dup := byOffset[pos.Offset]; dup {
					t.Errorf("offset %d given to %s and %s", pos.Offset, prev, data)
				}
				byOffset[pos.Offset] = data
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	const total = workers * each
	for off := uint64(1); off <= total; off++ {
		if _, ok := byOffset[off]; !ok {
			t.Fatalf("no publish got offset %d of 1..%d", off, total)
		}
	}

	got := h.delivered(ch, total)
	if len(got) != total {
		t.Fatalf("delivered %d publications, want %d", len(got), total)
	}
	for i, p := range got {
		if p.Offset != uint64(i+1) || p.Epoch != epoch || string(p.Data) != byOffset[p.Offset] {
			t.Fatalf("delivery %d = %s/%d %s, want %s/%d %s", i, p.Epoch, p.Offset, p.Data, epoch, i+1, byOffset[uint64(i+1)])
		}
	}
	pubs, _, err := h.history(ch, broker.StreamPosition{Epoch: epoch}, 0)
	if err != nil || len(pubs) != total {
		t.Fatalf("History from 0 = %d publications, %v; want %d", len(pubs), err, total)
	}
	for _, p := range pubs {
		if string(p.Data) != byOffset[p.Offset] {
			t.Fatalf("History offset %d = %s, want %s", p.Offset, p.Data, byOffset[p.Offset])
		}
	}
}

// testHistorySize: history keeps the newest Size publications.
func testHistorySize(t *testing.T, newBroker Factory) {
	h := start(t, newBroker, broker.HistoryOptions{Size: 10})
	ch := h.channel("size")
	var pos broker.StreamPosition
	for i := 1; i <= 25; i++ {
		pos = h.publish(ch, fmt.Sprintf(`"m%d"`, i), "")
	}
	at := func(off uint64) broker.StreamPosition { return broker.StreamPosition{Epoch: pos.Epoch, Offset: off} }

	pubs, cur, err := h.history(ch, at(15), 0)
	if err != nil || cur != pos {
		t.Fatalf("History since 15 (oldest kept 16) = %v, %v; want %v, nil", cur, err, pos)
	}
	wantData(t, "History since 15", pubs, `"m16"`, `"m17"`, `"m18"`, `"m19"`, `"m20"`, `"m21"`, `"m22"`, `"m23"`, `"m24"`, `"m25"`)

	pubs, cur, err = h.history(ch, at(15), 3)
	if err != nil || cur != pos {
		t.Fatalf("History since 15, limit 3 = %v, %v; want %v, nil", cur, err, pos)
	}
	wantData(t, "History since 15, limit 3", pubs, `"m16"`, `"m17"`, `"m18"`)

	for _, since := range []uint64{14, 0} {
		if _, cur, err := h.history(ch, at(since), 0); !errors.Is(err, broker.ErrUnrecoverable) || cur != pos {
			t.Errorf("History since %d (offset 15 left history) = %v, %v; want %v, ErrUnrecoverable", since, cur, err, pos)
		}
	}
}

// testHistoryTTL: publications and idempotency keys leave history after
// the TTL. It sleeps for real; a run too slow to observe the window is
// retried.
func testHistoryTTL(t *testing.T, newBroker Factory) {
	const ttl = 500 * time.Millisecond
	h := start(t, newBroker, broker.HistoryOptions{Size: 100, TTL: ttl})
	for attempt := 1; ; attempt++ {
		if historyTTLOnce(t, h, ttl) || t.Failed() {
			return
		}
		if attempt == 3 {
			t.Skip("machine too slow to observe a history TTL window")
		}
	}
}

// historyTTLOnce publishes a (keyed) at 0 and b at 0.3 TTL, and checks at
// 1.1 TTL that a has expired and b has not. It returns false when the
// machine was too slow for b to still be in its window.
func historyTTLOnce(t *testing.T, h *harness, ttl time.Duration) bool {
	ch := h.channel("ttl")
	h.subscribe(ch)
	a := h.publish(ch, `"a"`, "k")
	aDone := time.Now()
	time.Sleep(ttl * 3 / 10)
	bStart := time.Now()
	b := h.publish(ch, `"b"`, "")
	time.Sleep(time.Until(aDone.Add(ttl * 11 / 10)))

	_, _, errA := h.history(ch, a, 0) // since a: needs b only
	pubsBefore, _, errBefore := h.history(ch, broker.StreamPosition{Epoch: a.Epoch, Offset: a.Offset - 1}, 0)
	if time.Since(bStart) >= ttl*9/10 {
		return false
	}
	if errA != nil {
		t.Errorf("History since a, b published %v ago with TTL %v: %v", time.Since(bStart), ttl, errA)
	}
	if !errors.Is(errBefore, broker.ErrUnrecoverable) {
		t.Errorf("History before a, a published more than TTL ago = %d publications, %v; want ErrUnrecoverable", len(pubsBefore), errBefore)
	}
	if b.Epoch != a.Epoch || b.Offset != a.Offset+1 {
		t.Errorf("b = %v after a = %v", b, a)
	}

	again := h.publish(ch, `"a again"`, "k")
	if again == a {
		t.Errorf("Publish with key k more than TTL after its first use returned the first position %v", a)
	}
	for _, p := range h.delivered(ch, again.Offset) {
		if p.Epoch == again.Epoch && p.Offset == again.Offset && string(p.Data) != `"a again"` {
			t.Errorf("delivered %s at %v, want \"a again\"", p.Data, again)
		}
	}
	return true
}

// testRecovery: a position in history gives exactly the missed
// publications, in order.
func testRecovery(t *testing.T, newBroker Factory) {
	h := start(t, newBroker, broker.HistoryOptions{})
	ch := h.channel("recovery")
	var pos broker.StreamPosition
	var all []string
	for i := 1; i <= 10; i++ {
		all = append(all, fmt.Sprintf(`{"n":%d}`, i))
		pos = h.publish(ch, all[i-1], "")
	}
	for _, since := range []uint64{0, 4, 9, 10} {
		pubs, cur, err := h.history(ch, broker.StreamPosition{Epoch: pos.Epoch, Offset: since}, 0)
		if err != nil || cur != pos {
			t.Errorf("History since %d = %v, %v; want %v, nil", since, cur, err, pos)
			continue
		}
		wantData(t, fmt.Sprintf("History since %d", since), pubs, all[since:]...)
	}
}

// testUnrecoverable: a wrong epoch, an offset from the future, the zero
// position, or a position on a channel that does not exist are refused,
// with the current position.
func testUnrecoverable(t *testing.T, newBroker Factory) {
	h := start(t, newBroker, broker.HistoryOptions{})
	ch := h.channel("unrecoverable")
	h.publish(ch, `1`, "")
	pos := h.publish(ch, `2`, "")
	for _, since := range []broker.StreamPosition{
		{Epoch: pos.Epoch + "x", Offset: 1},
		{Epoch: pos.Epoch, Offset: 3},
		{},
	} {
		if _, cur, err := h.history(ch, since, 0); !errors.Is(err, broker.ErrUnrecoverable) || cur != pos {
			t.Errorf("History since %v = %v, %v; want %v, ErrUnrecoverable", since, cur, err, pos)
		}
	}

	fresh := h.channel("never-used")
	since := broker.StreamPosition{Epoch: pos.Epoch, Offset: 2}
	_, cur, err := h.history(fresh, since, 0)
	if !errors.Is(err, broker.ErrUnrecoverable) || cur.Offset != 0 || cur.Epoch == since.Epoch {
		t.Errorf("History of a new channel since %v = %v, %v; want a new epoch at 0, ErrUnrecoverable", since, cur, err)
	}
	if got := h.publish(fresh, `1`, ""); got.Epoch != cur.Epoch || got.Offset != 1 {
		t.Errorf("first Publish = %v, want %s/1 (the epoch History returned)", got, cur.Epoch)
	}
}

// testIdempotency: a repeated key is neither stored nor delivered again;
// keys are per channel; the empty key is no key.
func testIdempotency(t *testing.T, newBroker Factory) {
	h := start(t, newBroker, broker.HistoryOptions{})
	ch, other := h.channel("idem"), h.channel("idem-other")
	h.subscribe(ch)
	h.subscribe(other)

	first := h.publish(ch, `"a"`, "k1")
	if retry := h.publish(ch, `"a (retry)"`, "k1"); retry != first {
		t.Errorf("Publish with a used key = %v, want the first position %v", retry, first)
	}
	h.publish(ch, `"b"`, "k2")
	h.publish(ch, `"c"`, "")
	last := h.publish(ch, `"d"`, "")
	if last.Offset != first.Offset+3 {
		t.Errorf("after a, b and two unkeyed publishes, offset %d, want %d", last.Offset, first.Offset+3)
	}
	wantData(t, "delivered", h.delivered(ch, last.Offset), `"a"`, `"b"`, `"c"`, `"d"`)
	pubs, _, err := h.history(ch, broker.StreamPosition{Epoch: first.Epoch}, 0)
	if err != nil {
		t.Fatalf("History from 0: %v", err)
	}
	wantData(t, "History", pubs, `"a"`, `"b"`, `"c"`, `"d"`)

	o := h.publish(other, `"x"`, "k1")
	if o.Offset != 1 {
		t.Errorf("key k1 on another channel = %v, want a new publication at offset 1", o)
	}
	wantData(t, "delivered on the other channel", h.delivered(other, 1), `"x"`)
}

// testIdempotencyConcurrent: concurrent publishes with one key store one
// publication and all return its position.
func testIdempotencyConcurrent(t *testing.T, newBroker Factory) {
	const workers = 8
	h := start(t, newBroker, broker.HistoryOptions{})
	ch := h.channel("idem-concurrent")
	h.subscribe(ch)
	positions := make([]broker.StreamPosition, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			pos, err := h.b.Publish(context.Background(), ch, []byte(`"once"`), broker.PublishOptions{Key: "same"})
			if err != nil {
				t.Errorf("Publish: %v", err)
			}
			positions[w] = pos
		})
	}
	wg.Wait()
	for w, pos := range positions {
		if pos != positions[0] {
			t.Errorf("publisher %d got %v, publisher 0 got %v", w, pos, positions[0])
		}
	}
	marker := h.publish(ch, `"marker"`, "")
	if marker.Offset != positions[0].Offset+1 {
		t.Errorf("next publish got %v after %v", marker, positions[0])
	}
	wantData(t, "delivered", h.delivered(ch, marker.Offset), `"once"`, `"marker"`)
}
