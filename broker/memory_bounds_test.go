package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heraldhq/herald/broker"
)

// payload returns JSON text of n bytes that names its channel and index.
func payload(ch string, i, n int) string {
	s := fmt.Sprintf(`"%s/%d `, ch, i)
	return s + strings.Repeat("x", n-len(s)-1) + `"`
}

func TestMemoryHistoryByteBound(t *testing.T) {
	const bound = 1 << 20
	m := broker.NewMemory(&broker.MemoryOptions{MaxHistoryBytes: bound})
	defer m.Close()
	check := func() {
		t.Helper()
		if held := m.Stats().HistoryBytes; held > bound {
			t.Fatalf("history holds %d bytes, over the bound of %d", held, bound)
		}
	}
	// The small channels publish first: theirs is the oldest history of all.
	small := make([]string, 10)
	for i := range small {
		small[i] = fmt.Sprintf("small:%d", i)
		for j := range 5 {
			mustPublish(t, m, small[i], payload(small[i], j+1, 100), "")
		}
	}
	mid := make([]string, 20)
	for i := range mid {
		mid[i] = fmt.Sprintf("mid:%d", i)
	}
	// 20 x 10 x 1 KiB in the mid channels, 6 MB in the two large ones.
	for j := range 500 {
		mustPublish(t, m, "big", payload("big", j+1, 8<<10), fmt.Sprint("k", j+1))
		check()
		mustPublish(t, m, "big2", payload("big2", j+1, 4<<10), "")
		check()
		if j%50 == 0 {
			for _, ch := range mid {
				mustPublish(t, m, ch, payload(ch, j/50+1, 1<<10), "")
				check()
			}
		}
	}

	for _, ch := range append(small, mid...) {
		pos := mustPosition(t, m, ch)
		pubs, _, err := m.History(t.Context(), ch, broker.StreamPosition{Epoch: pos.Epoch}, 0)
		if err != nil || uint64(len(pubs)) != pos.Offset {
			t.Errorf("%s: History from the start = %d publications, %v; want all %d", ch, len(pubs), err, pos.Offset)
		}
	}
	for _, ch := range []string{"big", "big2"} {
		pos := mustPosition(t, m, ch)
		kept := oldestKept(t, m, ch, pos)
		if kept <= 1 || kept > pos.Offset {
			t.Fatalf("%s: oldest publication kept = %d of %d; want the oldest ones dropped, the newest kept", ch, kept, pos.Offset)
		}
		pubs, _, err := m.History(t.Context(), ch, broker.StreamPosition{Epoch: pos.Epoch, Offset: kept - 1}, 0)
		if err != nil || len(pubs) == 0 || !strings.HasPrefix(string(pubs[0].Data), fmt.Sprintf(`"%s/%d `, ch, kept)) {
			t.Errorf("%s: History since %d = %d publications, %v; want %d onwards", ch, kept-1, len(pubs), err, kept)
		}
		if _, _, err := m.History(t.Context(), ch, broker.StreamPosition{Epoch: pos.Epoch, Offset: kept - 2}, 0); !errors.Is(err, broker.ErrUnrecoverable) {
			t.Errorf("%s: History since %d (evicted) = %v, want ErrUnrecoverable", ch, kept-2, err)
		}
		t.Logf("%s keeps offsets %d-%d", ch, kept, pos.Offset)
	}
	// The two large channels came down to about the same bytes.
	big, big2 := mustPosition(t, m, "big"), mustPosition(t, m, "big2")
	bigKept := big.Offset - oldestKept(t, m, "big", big) + 1
	big2Kept := big2.Offset - oldestKept(t, m, "big2", big2) + 1
	if r := float64(big2Kept) / float64(bigKept); r < 1.5 || r > 2.5 {
		t.Errorf("big keeps %d publications of 8 KiB, big2 %d of 4 KiB: want about twice as many in big2", bigKept, big2Kept)
	}
	// The key of an evicted publication is forgotten with it; a kept one is not.
	if pos := mustPublish(t, m, "big", `"again"`, "k1"); pos.Offset != big.Offset+1 {
		t.Errorf("publish with the key of evicted offset 1 = %v, want a new publication at %d", pos, big.Offset+1)
	}
	if pos := mustPublish(t, m, "big", `"again"`, "k500"); pos.Offset != 500 {
		t.Errorf("publish with the key of kept offset 500 = %v, want offset 500", pos)
	}
}

// oldestKept returns the oldest offset still in the channel's history.
func oldestKept(t *testing.T, m *broker.Memory, ch string, pos broker.StreamPosition) uint64 {
	t.Helper()
	kept := pos.Offset + 1
	for kept > 1 {
		_, _, err := m.History(context.Background(), ch, broker.StreamPosition{Epoch: pos.Epoch, Offset: kept - 2}, 1)
		if err != nil {
			break
		}
		kept--
	}
	return kept
}

func TestMemoryHistoryBytesReturnToZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := broker.NewMemory(&broker.MemoryOptions{History: broker.HistoryOptions{Size: 10, TTL: time.Minute}, MaxHistoryBytes: 64 << 10})
		defer m.Close()
		if err := m.Subscribe(t.Context(), "held"); err != nil {
			t.Fatal(err)
		}
		var data int64
		for i := range 300 {
			ch := fmt.Sprintf("ch%d", i%7)
			if i%3 == 0 {
				ch = "held"
			}
			d := payload(ch, i, 100+i*7)
			data += int64(len(d))
			mustPublish(t, m, ch, d, fmt.Sprint("key", i))
		}
		st := m.Stats()
		if st.Channels != 8 || st.HistoryBytes <= 0 || st.HistoryBytes > 64<<10 {
			t.Errorf("Stats after publishing %d bytes = %+v; want 8 channels and 0 < bytes <= 64 KiB", data, st)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if st := m.Stats(); st != (broker.Stats{Channels: 1}) {
			t.Errorf("Stats after everything expired = %+v, want no bytes and the subscribed channel", st)
		}
	})
}

func TestMemoryChannelBound(t *testing.T) {
	ctx := t.Context()
	m := broker.NewMemory(&broker.MemoryOptions{MaxChannels: 3})
	defer m.Close()
	if err := m.Subscribe(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	b := mustPublish(t, m, "b", `1`, "")
	empty := mustPosition(t, m, "c")

	// "c" holds nothing but its position: it makes room for "d", then "d"
	// for "c" again.
	mustPosition(t, m, "d")
	if err := m.Subscribe(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if pos := mustPosition(t, m, "c"); pos.Epoch == empty.Epoch {
		t.Errorf("Position of c after it was dropped for d = %v, want a new epoch", pos)
	}
	// a and c subscribed, b holds history: the next new channel is refused.
	if _, err := m.Position(ctx, "f"); !errors.Is(err, broker.ErrTooManyChannels) {
		t.Errorf("Position of a 4th channel, none to drop = %v, want ErrTooManyChannels", err)
	}
	if _, err := m.Publish(ctx, "f", []byte(`1`), broker.PublishOptions{}); !errors.Is(err, broker.ErrTooManyChannels) {
		t.Errorf("Publish to a 4th channel = %v, want ErrTooManyChannels", err)
	}
	if err := m.Subscribe(ctx, "f"); !errors.Is(err, broker.ErrTooManyChannels) {
		t.Errorf("Subscribe to a 4th channel = %v, want ErrTooManyChannels", err)
	}
	if pos := mustPublish(t, m, "b", `2`, ""); pos.Epoch != b.Epoch || pos.Offset != 2 {
		t.Errorf("Publish to b, held, at the bound = %v, want %s/2", pos, b.Epoch)
	}
	if n := m.Stats().Channels; n != 3 {
		t.Errorf("Stats().Channels = %d, want 3", n)
	}
	// An unsubscribed channel without history makes room again.
	if err := m.Unsubscribe(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Position(ctx, "f"); err != nil {
		t.Errorf("Position of f after c was unsubscribed: %v", err)
	}
}

func TestMemoryChannelBoundDropsExpired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := broker.NewMemory(&broker.MemoryOptions{History: broker.HistoryOptions{TTL: time.Minute}, MaxChannels: 2})
		defer m.Close()
		old := mustPublish(t, m, "a", `1`, "")
		mustPublish(t, m, "b", `1`, "")
		if _, err := m.Position(t.Context(), "c"); !errors.Is(err, broker.ErrTooManyChannels) {
			t.Fatalf("Position of a 3rd channel = %v, want ErrTooManyChannels", err)
		}
		time.Sleep(30 * time.Second)
		mustPublish(t, m, "b", `2`, "")
		time.Sleep(31 * time.Second) // a expired, b did not
		if _, err := m.Position(t.Context(), "c"); err != nil {
			t.Fatalf("Position of c once a expired: %v", err)
		}
		if pos := mustPublish(t, m, "b", `3`, ""); pos.Offset != 3 {
			t.Errorf("b after c was made = %v, want offset 3", pos)
		}
		if pos := mustPosition(t, m, "a"); pos.Epoch == old.Epoch {
			t.Errorf("Position of a after it expired = %v, want a new epoch", pos)
		}
	})
}

// Channels of one publication each, all the same size: going past the bound
// drops as few of them as it takes, not all of them.
func TestMemoryHistoryByteBoundEqualChannels(t *testing.T) {
	const bound = 300_000
	m := broker.NewMemory(&broker.MemoryOptions{MaxHistoryBytes: bound})
	defer m.Close()
	ctx := context.Background()
	for i := range 10 {
		ch := fmt.Sprintf("eq%d", i)
		if _, err := m.Publish(ctx, ch, []byte(payload(ch, i, 60_000)), broker.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	kept := 0
	for i := range 10 {
		ch := fmt.Sprintf("eq%d", i)
		pos, err := m.Position(ctx, ch)
		if err != nil {
			t.Fatal(err)
		}
		pubs, _, err := m.History(ctx, ch, broker.StreamPosition{Epoch: pos.Epoch}, 0)
		if err == nil && len(pubs) == 1 {
			kept++
		}
	}
	if held := m.Stats().HistoryBytes; held > bound || kept < 3 {
		t.Fatalf("%d of 10 channels kept their publication, %d bytes held; want at least 3 kept within %d", kept, held, bound)
	}
}

// Concurrent publishers do not take the history over its bound, even for a
// moment: a publish that would go over waits for the eviction.
func TestMemoryHistoryByteBoundConcurrent(t *testing.T) {
	const bound = 1 << 20
	m := broker.NewMemory(&broker.MemoryOptions{MaxHistoryBytes: bound})
	defer m.Close()
	done := make(chan struct{})
	var peak int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			peak = max(peak, m.Stats().HistoryBytes)
			select {
			case <-done:
				return
			case <-time.After(50 * time.Microsecond):
			}
		}
	}()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 25 {
				ch := fmt.Sprintf("c%d-%d", g, i)
				if _, err := m.Publish(context.Background(), ch, []byte(payload(ch, i, 60_000)), broker.PublishOptions{}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	<-sampled
	if peak > bound {
		t.Fatalf("history held %d bytes at its peak, over the bound of %d", peak, bound)
	}
}
