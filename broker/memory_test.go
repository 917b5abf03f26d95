package broker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/broker/brokertest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left running after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits up to timeout for the goroutines started by this
// module's code to end, and returns the stacks of those still running.
func leakedGoroutines(timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "heraldhq/herald/broker") && !strings.Contains(g, "leakedGoroutines") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMemoryConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, opts broker.HistoryOptions) broker.Broker {
		return broker.NewMemory(&broker.MemoryOptions{History: opts})
	})
}

func mustPublish(t *testing.T, b broker.Broker, ch, data, key string) broker.StreamPosition {
	t.Helper()
	pos, err := b.Publish(context.Background(), ch, []byte(data), broker.PublishOptions{Key: key})
	if err != nil {
		t.Fatalf("Publish(%q): %v", ch, err)
	}
	return pos
}

func mustPosition(t *testing.T, b broker.Broker, ch string) broker.StreamPosition {
	t.Helper()
	pos, err := b.Position(context.Background(), ch)
	if err != nil {
		t.Fatalf("Position(%q): %v", ch, err)
	}
	return pos
}

// historyData returns the data of the publications after since, or the
// error.
func historyData(b broker.Broker, ch string, since broker.StreamPosition) (string, error) {
	pubs, _, err := b.History(context.Background(), ch, since, 0)
	var data []string
	for _, p := range pubs {
		data = append(data, string(p.Data))
	}
	return strings.Join(data, " "), err
}

func TestMemoryIdleChannelGetsNewEpoch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = time.Minute
		m := broker.NewMemory(&broker.MemoryOptions{History: broker.HistoryOptions{TTL: ttl}})
		defer m.Close()
		idle := mustPublish(t, m, "idle", `1`, "")
		if err := m.Subscribe(t.Context(), "held"); err != nil {
			t.Fatal(err)
		}
		held := mustPublish(t, m, "held", `1`, "")

		time.Sleep(ttl)
		if pos := mustPosition(t, m, "idle"); pos != idle {
			t.Errorf("Position exactly one TTL after the last publish = %v, want %v", pos, idle)
		}
		time.Sleep(time.Second)
		pos := mustPosition(t, m, "idle")
		if pos.Epoch == idle.Epoch || pos.Offset != 0 {
			t.Errorf("Position after the TTL = %v, want a new epoch (not %s) at 0", pos, idle.Epoch)
		}
		if _, err := historyData(m, "idle", idle); !errors.Is(err, broker.ErrUnrecoverable) {
			t.Errorf("History since the old epoch: %v, want ErrUnrecoverable", err)
		}
		if pos := mustPosition(t, m, "held"); pos != held {
			t.Errorf("subscribed channel's Position after the TTL = %v, want %v", pos, held)
		}

		if err := m.Unsubscribe(t.Context(), "held"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(ttl)
		if pos := mustPosition(t, m, "held"); pos != held {
			t.Errorf("Position one TTL after Unsubscribe = %v, want %v", pos, held)
		}
		time.Sleep(time.Second)
		if pos := mustPosition(t, m, "held"); pos.Epoch == held.Epoch {
			t.Errorf("Position more than a TTL after Unsubscribe = %v, want a new epoch", pos)
		}
	})
}

func TestMemorySweepDropsIdleChannels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := broker.NewMemory(&broker.MemoryOptions{History: broker.HistoryOptions{TTL: time.Minute}})
		defer m.Close()
		for i := range 100 {
			mustPublish(t, m, fmt.Sprintf("ch%d", i), `1`, fmt.Sprintf("key%d", i))
		}
		if err := m.Subscribe(t.Context(), "kept"); err != nil {
			t.Fatal(err)
		}
		if n := m.Channels(); n != 101 {
			t.Fatalf("Channels = %d, want 101", n)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if n := m.Channels(); n != 1 {
			t.Errorf("Channels two TTLs later, nothing touched = %d, want 1 (the subscribed one)", n)
		}
	})
}

func TestMemoryKeyExpiresWithTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := broker.NewMemory(&broker.MemoryOptions{History: broker.HistoryOptions{TTL: time.Minute}})
		defer m.Close()
		if err := m.Subscribe(t.Context(), "ch"); err != nil { // keeps the stream
			t.Fatal(err)
		}
		first := mustPublish(t, m, "ch", `"a"`, "k")
		time.Sleep(59 * time.Second)
		if again := mustPublish(t, m, "ch", `"a"`, "k"); again != first {
			t.Errorf("key reused within the TTL: %v, want %v", again, first)
		}
		time.Sleep(2 * time.Second) // the duplicate did not renew the key
		if again := mustPublish(t, m, "ch", `"a"`, "k"); again.Offset != first.Offset+1 {
			t.Errorf("key reused after the TTL: %v, want a new publication after %v", again, first)
		}
	})
}

func TestMemoryNamespaces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := broker.NewMemory(&broker.MemoryOptions{
			History: broker.HistoryOptions{Size: 5, TTL: time.Hour},
			Namespaces: map[string]broker.HistoryOptions{
				"big":   {Size: 50},
				"short": {TTL: time.Second},
			},
		})
		defer m.Close()
		for _, ch := range []string{"plain", "chat:x", "big:x", "short:x"} {
			for i := 1; i <= 10; i++ {
				mustPublish(t, m, ch, fmt.Sprint(i), "")
			}
		}
		for ch, oldest := range map[string]uint64{"plain": 6, "chat:x": 6, "big:x": 1, "short:x": 6} {
			pos := mustPosition(t, m, ch)
			if _, err := historyData(m, ch, broker.StreamPosition{Epoch: pos.Epoch, Offset: oldest - 1}); err != nil {
				t.Errorf("%s: History since %d: %v", ch, oldest-1, err)
			}
			if oldest > 1 {
				if _, err := historyData(m, ch, broker.StreamPosition{Epoch: pos.Epoch, Offset: oldest - 2}); !errors.Is(err, broker.ErrUnrecoverable) {
					t.Errorf("%s: History since %d: %v, want ErrUnrecoverable", ch, oldest-2, err)
				}
			}
		}

		time.Sleep(600 * time.Millisecond)
		pos := mustPublish(t, m, "short:x", `11`, "")
		time.Sleep(600 * time.Millisecond)
		if data, err := historyData(m, "short:x", broker.StreamPosition{Epoch: pos.Epoch, Offset: 10}); err != nil || data != "11" {
			t.Errorf("short:x, History since 10 = %q, %v; want 11", data, err)
		}
		if _, err := historyData(m, "short:x", broker.StreamPosition{Epoch: pos.Epoch, Offset: 9}); !errors.Is(err, broker.ErrUnrecoverable) {
			t.Errorf("short:x, History since 9 (published 1.2s ago, TTL 1s): %v, want ErrUnrecoverable", err)
		}
		if _, err := historyData(m, "plain", broker.StreamPosition{Epoch: mustPosition(t, m, "plain").Epoch, Offset: 9}); err != nil {
			t.Errorf("plain, History since 9 (TTL 1h): %v", err)
		}
	})
}

func TestMemoryRunAlone(t *testing.T) {
	m := broker.NewMemory(nil)
	defer m.Close()
	if err := m.Subscribe(t.Context(), "ch"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	delivered := make(chan struct{}, 1)
	done := make(chan error)
	go func() {
		done <- m.Run(ctx, func(broker.Publication) {
			select {
			case delivered <- struct{}{}:
			default:
			}
		})
	}()
	for running := false; !running; {
		mustPublish(t, m, "ch", `1`, "")
		select {
		case <-delivered:
			running = true
		case <-time.After(time.Millisecond):
		}
	}
	if err := m.Run(context.Background(), func(broker.Publication) {}); err == nil || errors.Is(err, broker.ErrClosed) {
		t.Errorf("second Run while one is active = %v, want an error at once", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v after its context ended, want context.Canceled", err)
	}
	// After Run returned, deliver is not called any more: a new Run works.
	mustPublish(t, m, "ch", `2`, "")
	select {
	case <-delivered:
		t.Error("deliver called after Run returned")
	default:
	}
}

func TestMemoryTinyTTLDoesNotSpin(t *testing.T) {
	m := broker.NewMemory(&broker.MemoryOptions{History: broker.HistoryOptions{TTL: time.Nanosecond}})
	defer m.Close()
	done := make(chan error, 1)
	go func() {
		_, err := m.Publish(context.Background(), "c", []byte("1"), broker.PublishOptions{})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("publish on a channel with a 1ns TTL did not return")
	}
}
