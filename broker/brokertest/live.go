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

// testSubscribeWhilePublishing follows the server's recovery sequence while
// publishers run: remember a position, subscribe, read history since the
// position, then take live deliveries after history's position. Merged, the
// two must be every publication after the position, once each, in order.
// Meanwhile a reader checks that Position and History agree.
func testSubscribeWhilePublishing(t *testing.T, newBroker Factory) {
	h := start(t, newBroker, broker.HistoryOptions{Size: 100_000})
	for round, joinAt := range []uint64{1, 200, 400} {
		h.subscribeRound(fmt.Sprintf("live%d", round), joinAt)
		if t.Failed() {
			return
		}
	}
}

// subscribeRound runs 4 publishers on a new channel, joins it once it
// reaches offset joinAt, and stops the publishers 50 publications after
// its history read, so that live deliveries overlap the join.
func (h *harness) subscribeRound(name string, joinAt uint64) {
	const publishers, most = 4, 20_000
	t := h.t
	ch := h.channel(name)
	var mu sync.Mutex
	byOffset := make(map[uint64]string)
	stop := make(chan struct{})
	stopAll := sync.OnceFunc(func() { close(stop) })
	var wg sync.WaitGroup
	defer wg.Wait() // runs second, also when the round fails
	defer stopAll()
	for p := range publishers {
		wg.Go(func() {
			for i := 0; i < most/publishers; i++ {
				select {
				case <-stop:
					return
				default:
				}
				data := fmt.Sprintf(`"%s-p%d-%d"`, name, p, i)
				pos, err := h.b.Publish(context.Background(), ch, []byte(data), broker.PublishOptions{})
				if err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				mu.Lock()
				byOffset[pos.Offset] = data
				mu.Unlock()
			}
		})
	}
	wg.Go(func() { h.watch(ch, stop) })

	since := h.waitOffset(ch, joinAt)
	h.subscribe(ch)
	pubs, cur, err := h.history(ch, since, 0)
	if err != nil || uint64(len(pubs)) != cur.Offset-since.Offset {
		t.Fatalf("%s: History since %v = %d publications, %v, %v; want all up to the position", name, since, len(pubs), cur, err)
	}
	h.waitOffset(ch, cur.Offset+50)
	stopAll()
	wg.Wait()
	last := uint64(len(byOffset))
	live := h.delivered(ch, last)

	next := since.Offset + 1
	for _, p := range append(pubs, live...) {
		if p.Offset < next {
			continue // delivered live and read from history: sent once
		}
		if p.Offset != next || p.Epoch != since.Epoch || string(p.Data) != byOffset[p.Offset] {
			t.Fatalf("%s: merged history (to %d) and live: got %s/%d %s, want %s/%d %s",
				name, cur.Offset, p.Epoch, p.Offset, p.Data, since.Epoch, next, byOffset[next])
		}
		next++
	}
	if next != last+1 {
		t.Fatalf("%s: merged history and live end at %d, want %d", name, next-1, last)
	}
}

// waitOffset polls Position until the channel reaches offset.
func (h *harness) waitOffset(ch string, offset uint64) broker.StreamPosition {
	h.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		pos := h.position(ch)
		if pos.Offset >= offset {
			return pos
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("channel %s stayed at %v, waiting for offset %d", ch, pos, offset)
		}
		time.Sleep(time.Millisecond)
	}
}

// watch reads Position and History until stop, checking that the epoch
// stays, offsets never go back, and History since an earlier position
// returns every publication up to the position it reports.
func (h *harness) watch(ch string, stop <-chan struct{}) {
	ctx := context.Background()
	var prev broker.StreamPosition
	for {
		select {
		case <-stop:
			return
		default:
		}
		pos, err := h.b.Position(ctx, ch)
		if err != nil {
			h.t.Errorf("Position: %v", err)
			return
		}
		if prev.Epoch != "" && (pos.Epoch != prev.Epoch || pos.Offset < prev.Offset) {
			h.t.Errorf("Position went from %v to %v", prev, pos)
			return
		}
		if prev.Epoch != "" {
			pubs, cur, err := h.b.History(ctx, ch, prev, 0)
			if err != nil || cur.Offset < pos.Offset || uint64(len(pubs)) != cur.Offset-prev.Offset {
				h.t.Errorf("History since %v after Position %v = %d publications, %v, %v", prev, pos, len(pubs), cur, err)
				return
			}
			for i, p := range pubs {
				if p.Offset != prev.Offset+1+uint64(i) {
					h.t.Errorf("History since %v: offset %d at index %d", prev, p.Offset, i)
					return
				}
			}
		}
		prev = pos
	}
}

// testUnsubscribe: only subscribed channels are delivered.
func testUnsubscribe(t *testing.T, newBroker Factory) {
	h := start(t, newBroker, broker.HistoryOptions{})
	ch, marker := h.channel("unsub"), h.channel("unsub-marker")
	h.subscribe(marker)
	h.publish(ch, `"not subscribed yet"`, "")
	h.delivered(marker, h.publish(marker, `1`, "").Offset)

	h.subscribe(ch)
	h.delivered(ch, h.publish(ch, `"subscribed"`, "").Offset)
	if err := h.b.Unsubscribe(context.Background(), ch); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	h.publish(ch, `"unsubscribed"`, "")
	h.delivered(marker, h.publish(marker, `2`, "").Offset)
	wantData(t, "delivered", h.rec.get(ch), `"subscribed"`)
}

// testDataCopied: the caller may reuse its buffer once Publish returns.
func testDataCopied(t *testing.T, newBroker Factory) {
	h := start(t, newBroker, broker.HistoryOptions{})
	ch := h.channel("copy")
	h.subscribe(ch)
	buf := []byte(`"original"`)
	pos, err := h.b.Publish(context.Background(), ch, buf, broker.PublishOptions{})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	copy(buf, `"modified"`)
	pubs, _, err := h.history(ch, broker.StreamPosition{Epoch: pos.Epoch, Offset: pos.Offset - 1}, 0)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	wantData(t, "History after the caller reused its buffer", pubs, `"original"`)
	wantData(t, "delivered", h.delivered(ch, pos.Offset), `"original"`)
}

// testRunGuards: Run refuses a nil deliver func, and a second Run while
// one is active, at once and without disturbing the active one.
func testRunGuards(t *testing.T, newBroker Factory) {
	h := start(t, newBroker, broker.HistoryOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := h.b.Run(ctx, nil); !errors.Is(err, broker.ErrNoDeliver) {
		t.Errorf("Run(nil) = %v, want ErrNoDeliver", err)
	}
	if err := h.b.Run(ctx, func(broker.Publication) {}); !errors.Is(err, broker.ErrRunning) {
		t.Errorf("a second Run = %v, want ErrRunning", err)
	}
	ch := h.channel("guards")
	h.subscribe(ch)
	h.delivered(ch, h.publish(ch, `1`, "").Offset)
}

// testClose: Close ends Run, later calls fail with ErrClosed, and Close
// may be called again.
func testClose(t *testing.T, newBroker Factory) {
	h := start(t, newBroker, broker.HistoryOptions{})
	ch := h.channel("close")
	h.publish(ch, `1`, "")
	first := h.b.Close()
	if first != nil {
		t.Errorf("Close: %v", first)
	}
	select {
	case err := <-h.runDone:
		if !errors.Is(err, broker.ErrClosed) {
			t.Errorf("Run returned %v after Close, want ErrClosed", err)
		}
		h.runDone <- err // for the harness's cleanup
	case <-time.After(waitTimeout):
		t.Fatalf("Run did not return within %v of Close", waitTimeout)
	}
	if _, err := h.b.Publish(context.Background(), ch, []byte(`2`), broker.PublishOptions{}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if err := h.b.Run(context.Background(), func(broker.Publication) {}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
	if again := h.b.Close(); (again == nil) != (first == nil) {
		t.Errorf("second Close = %v, first returned %v", again, first)
	}
}
