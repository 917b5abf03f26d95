package redisbroker_test

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/broker/redisbroker"
)

var benchData = []byte(`{"text":"hello, world","user":"alice"}`)

// counter runs b with a deliver that counts, subscribed to the channels
// given, and returns once deliveries flow.
func counter(tb testing.TB, b *redisbroker.Broker, channels ...string) *atomic.Int64 {
	var n atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Run(ctx, func(broker.Publication) { n.Add(1) })
	}()
	tb.Cleanup(func() { cancel(); <-done })
	for _, ch := range channels {
		if err := b.Subscribe(ctx, ch); err != nil {
			tb.Fatal(err)
		}
	}
	for n.Load() == 0 {
		b.Publish(ctx, channels[0], []byte(`0`), broker.PublishOptions{})
		time.Sleep(time.Millisecond)
	}
	n.Store(0)
	return &n
}

// waitDelivered waits until n reaches want.
func waitDelivered(b *testing.B, n *atomic.Int64, want int64) {
	deadline := time.Now().Add(time.Minute)
	for n.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d publications delivered after a minute", n.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkPublish publishes one after another on one subscribed channel,
// each publish waiting for Redis's answer (a round trip to a local Redis
// per publication), without key and with a new key each time.
func BenchmarkPublish(b *testing.B) {
	r := startRedis(b)
	for _, keyed := range []bool{false, true} {
		name := "nokey"
		if keyed {
			name = "key"
		}
		b.Run(name, func(b *testing.B) {
			rb := newBroker(b, r, redisbroker.Options{})
			delivered := counter(b, rb, "chat:bench")
			keys := make([]string, b.N)
			if keyed {
				for i := range keys {
					keys[i] = "k-" + strconv.Itoa(i)
				}
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := rb.Publish(ctx, "chat:bench", benchData, broker.PublishOptions{Key: keys[i]}); err != nil {
					b.Fatal(err)
				}
			}
			waitDelivered(b, delivered, int64(b.N))
		})
	}
}

// BenchmarkPublishParallel publishes from 64 goroutines at once, as the
// requests of many connections do, on one channel or on a channel each;
// the client pipelines their commands on its connections. The time
// includes the delivery of every publication back through pub/sub.
func BenchmarkPublishParallel(b *testing.B) {
	r := startRedis(b)
	for _, shared := range []bool{true, false} {
		name := "channels"
		if shared {
			name = "onechannel"
		}
		b.Run(name, func(b *testing.B) {
			rb := newBroker(b, r, redisbroker.Options{})
			const goroutines = 64
			channels := make([]string, goroutines)
			for i := range channels {
				channels[i] = "chat:bench-" + strconv.Itoa(i)
				if shared {
					channels[i] = "chat:bench"
				}
			}
			delivered := counter(b, rb, channels...)
			var next atomic.Int64
			b.SetParallelism(goroutines / max(1, testingProcs()))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ch := channels[int(next.Add(1)-1)%goroutines]
				ctx := context.Background()
				for pb.Next() {
					if _, err := rb.Publish(ctx, ch, benchData, broker.PublishOptions{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			waitDelivered(b, delivered, int64(b.N))
		})
	}
}

func testingProcs() int { return runtime.GOMAXPROCS(0) }
