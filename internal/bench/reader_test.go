package bench

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/protocol"
)

// framesConn is a Conn reading the given server frames.
func framesConn(frames []byte) *Conn {
	return &Conn{br: bufio.NewReaderSize(bytes.NewReader(frames), 4096), hdr: make([]byte, 2, ws.MaxHeaderSize-2)}
}

func messageFrames(channel string, seqs ...uint64) []byte {
	var b bytes.Buffer
	for _, seq := range seqs {
		payload := protocol.AppendMessage(nil, channel, seq+100, time.Now().UnixMilli(), nil, appendPayload(nil, seq, time.Now(), 100))
		ws.WriteFrame(&b, ws.NewTextFrame(payload))
	}
	return b.Bytes()
}

// TestSubscriberCounts feeds a subscriber duplicates, a gap and a late
// message.
func TestSubscriberCounts(t *testing.T) {
	s := newSubscriber(framesConn(messageFrames("c", 1, 2, 2, 4, 3, 5, 1)))
	var h Histogram
	s.read("c", &h)
	if !errors.Is(s.failed(), io.EOF) {
		t.Fatalf("read ended with %v", s.failed())
	}
	if got := [4]uint64{s.received.Load(), s.distinct(), s.dups.Load(), s.outOfOrder.Load()}; got != [4]uint64{7, 5, 2, 1} {
		t.Errorf("received, distinct, duplicated, out of order = %v, want [7 5 2 1]", got)
	}
	if h.Count() != 7 {
		t.Errorf("%d latencies recorded, want 7", h.Count())
	}
}

// TestReadPathDoesNotAllocate reads 10,000 message frames with a few
// allocations at most, none per message.
func TestReadPathDoesNotAllocate(t *testing.T) {
	seqs := make([]uint64, 10000)
	for i := range seqs {
		seqs[i] = uint64(i + 1)
	}
	s := newSubscriber(framesConn(messageFrames("bench", seqs...)))
	var h Histogram
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s.read("bench", &h)
	runtime.ReadMemStats(&after)
	if n := after.Mallocs - before.Mallocs; n > 20 {
		t.Errorf("reading 10,000 messages allocated %d times", n)
	}
	if s.distinct() != 10000 {
		t.Errorf("read %d messages", s.distinct())
	}
}
