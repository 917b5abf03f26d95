package broker_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker"
)

// BenchmarkLogPublish publishes 100-byte messages from 1 and 8 goroutines
// (each on a channel of its own) without a data dir and with the
// write-ahead log under each fsync mode. Results: docs/BENCHMARKS.md.
func BenchmarkLogPublish(b *testing.B) {
	data := []byte(`"` + strings.Repeat("x", 98) + `"`)
	for _, mode := range []string{"memory", "off", "interval", "always"} {
		for _, publishers := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/publishers=%d", mode, publishers), func(b *testing.B) {
				opts := &broker.MemoryOptions{}
				if mode != "memory" {
					f, _ := broker.ParseFsyncMode(mode)
					opts.DataDir, opts.Fsync = b.TempDir(), f
				}
				m, err := broker.OpenMemory(opts)
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close()
				// RunParallel starts GOMAXPROCS x parallelism goroutines.
				b.SetParallelism(max(publishers/runtime.GOMAXPROCS(0), 1))
				var next atomic.Int64
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				if publishers == 1 {
					for range b.N {
						m.Publish(ctx, "bench:0", data, broker.PublishOptions{})
					}
				} else {
					b.RunParallel(func(pb *testing.PB) {
						ch := fmt.Sprintf("bench:%d", next.Add(1))
						for pb.Next() {
							m.Publish(ctx, ch, data, broker.PublishOptions{})
						}
					})
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "publishes/s")
			})
		}
	}
}

// BenchmarkLogStart measures NewMemory on a log of 1,000 channels each
// holding a full history (1,000 publications of 100 bytes), left by a
// crash: the replay and the new log's first segment.
func BenchmarkLogStart(b *testing.B) {
	dir := b.TempDir()
	m, err := broker.OpenMemory(&broker.MemoryOptions{DataDir: dir, Fsync: broker.FsyncOff})
	if err != nil {
		b.Fatal(err)
	}
	data := []byte(`"` + strings.Repeat("x", 98) + `"`)
	ctx := context.Background()
	for c := range 1000 {
		ch := fmt.Sprintf("room:%d", c)
		for range broker.DefaultHistorySize {
			if _, err := m.Publish(ctx, ch, data, broker.PublishOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	m.Crash()
	b.ResetTimer()
	for range b.N {
		m, err := broker.OpenMemory(&broker.MemoryOptions{DataDir: dir, Fsync: broker.FsyncOff})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if got := m.Channels(); got != 1000 {
			b.Fatalf("%d channels after replay, want 1000", got)
		}
		m.Crash()
		b.StartTimer()
	}
}
