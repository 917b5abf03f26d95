package broker_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker"
)

// runNoop runs m with a deliver that does nothing and returns once
// deliveries flow on ch, which it subscribes.
func runNoop(b *testing.B, m *broker.Memory, ch string) {
	ctx, cancel := context.WithCancel(context.Background())
	var delivered atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx, func(broker.Publication) { delivered.Store(true) })
	}()
	b.Cleanup(func() { cancel(); <-done })
	if err := m.Subscribe(ctx, ch); err != nil {
		b.Fatal(err)
	}
	for !delivered.Load() {
		m.Publish(ctx, ch, []byte(`0`), broker.PublishOptions{})
	}
}

// BenchmarkMemoryPublish publishes on one channel with a no-op deliver:
// without key, with a new key each time (the key set grows for the whole
// run, as it does within a 2-minute TTL), and with keys under a 10ms TTL
// (the key set stays small: the steady cost of a key).
func BenchmarkMemoryPublish(b *testing.B) {
	data := []byte(`{"text":"hello, world","user":"alice"}`)
	for _, bc := range []struct {
		name  string
		keyed bool
		ttl   time.Duration
	}{
		{"nokey", false, 0},
		{"key", true, 0},
		{"key-ttl10ms", true, 10 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := broker.NewMemory(&broker.MemoryOptions{History: broker.HistoryOptions{TTL: bc.ttl}})
			b.Cleanup(func() { m.Close() })
			runNoop(b, m, "chat:bench")
			keys := make([]string, b.N)
			if bc.keyed {
				for i := range keys {
					keys[i] = "k-" + strconv.Itoa(i)
				}
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := m.Publish(ctx, "chat:bench", data, broker.PublishOptions{Key: keys[i]}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMemoryPublishParallel publishes from every P, each on its own
// channel.
func BenchmarkMemoryPublishParallel(b *testing.B) {
	data := []byte(`{"text":"hello, world","user":"alice"}`)
	m := broker.NewMemory(nil)
	b.Cleanup(func() { m.Close() })
	runNoop(b, m, "chat:warmup")
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ch := "chat:bench-" + strconv.FormatInt(next.Add(1), 10)
		ctx := context.Background()
		if err := m.Subscribe(ctx, ch); err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			if _, err := m.Publish(ctx, ch, data, broker.PublishOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
