package herald

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/protocol"
)

// The fan-out benchmarks publish through the memory broker to subscribers of
// one channel and count one op per publish, the writes of every delivery
// included: allocs/op is allocations per publish, and must not grow with the
// number of subscribers. ns/delivery is ns/op divided by the subscribers.

var benchData = []byte(`{"s":1234567,"t":1767225600000000000,"p":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`) // 100 bytes

// BenchmarkPublishFanout delivers to sessions whose connections discard
// what they are written: it measures the broker, the hub and the send queue.
func BenchmarkPublishFanout(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			benchFanout(b, n, benchData, false, func(b *testing.B) net.Conn { return newDiscardConn() })
		})
	}
}

// BenchmarkPublishFanoutTCP delivers to sessions on loopback TCP sockets
// drained by a reader each, as a server does. Every subscriber holds two
// descriptors in this process, hence at most 5,000.
func BenchmarkPublishFanoutTCP(b *testing.B) {
	for _, n := range []int{10, 1000, 5000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			benchFanout(b, n, benchData, false, func(b *testing.B) net.Conn { return drainedPair(b, ln) })
		})
	}
}

// benchFanout publishes data to n sessions on newConn's connections, which
// negotiated compression when deflate is set.
func benchFanout(b *testing.B, n int, data []byte, deflate bool, newConn func(*testing.B) net.Conn) {
	srv := New(&Options{Logger: slog.New(slog.DiscardHandler), SendQueueBytes: 256 << 20, Compression: deflate})
	defer srv.Close()
	ctx := context.Background()
	sessions := make([]*session, n)
	for i := range sessions {
		conn := newConn(b)
		s := newSession(srv, conn, bufio.NewReaderSize(conn, 16), "bench", auth.Identity{}, true)
		s.deflate = deflate
		s.subscribe(ctx, &protocol.Subscribe{Channel: "bench"})
		sessions[i] = s
		defer conn.Close()
	}
	var last uint64
	publish := func() {
		pos, err := srv.broker.Publish(ctx, "bench", data, broker.PublishOptions{})
		if err != nil {
			b.Fatal(err)
		}
		last = pos.Offset
	}
	// The broker delivers once the server's broker loop has attached to
	// it; publish until a publication reaches every session.
	for {
		publish()
		if delivered(sessions, last, 10*time.Millisecond) {
			break
		}
	}
	// Warm up: the queues grow to their working size once, as on a
	// server that has been running.
	for range 100 {
		publish()
	}
	waitDelivered(b, sessions, last)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		publish()
	}
	waitDelivered(b, sessions, last)
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
}

// waitDelivered waits until every session was handed the publication at
// offset and wrote everything queued for it.
func waitDelivered(b *testing.B, sessions []*session, offset uint64) {
	if !delivered(sessions, offset, time.Minute) {
		b.Fatalf("publication %d not delivered to every session within a minute", offset)
	}
}

func delivered(sessions []*session, offset uint64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for _, s := range sessions {
		for {
			s.mu.Lock()
			sub := s.subscriptionLocked("bench")
			done := sub != nil && sub.last >= offset && !s.flushing && len(s.queue) == 0
			closing := s.closing
			s.mu.Unlock()
			if closing {
				panic("session closed: " + s.reason)
			}
			if done {
				break
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	return true
}

// drainedPair returns the server end of a loopback TCP connection whose
// client end is read and discarded until it closes.
func drainedPair(b *testing.B, ln net.Listener) net.Conn {
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		io.Copy(io.Discard, client)
		client.Close()
	}()
	return server
}

// discardConn is a net.Conn that accepts every write and blocks reads until
// closed.
type discardConn struct {
	closeOnce sync.Once
	closed    chan struct{}
}

func newDiscardConn() *discardConn { return &discardConn{closed: make(chan struct{})} }

func (c *discardConn) Read([]byte) (int, error)         { <-c.closed; return 0, io.EOF }
func (c *discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *discardConn) Close() error                     { c.closeOnce.Do(func() { close(c.closed) }); return nil }
func (c *discardConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *discardConn) SetDeadline(time.Time) error      { return nil }
func (c *discardConn) SetReadDeadline(time.Time) error  { return nil }
func (c *discardConn) SetWriteDeadline(time.Time) error { return nil }
