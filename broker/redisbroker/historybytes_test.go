package redisbroker_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/broker/redisbroker"
)

// jsonString returns a JSON string of n bytes, quotes included.
func jsonString(n int) string { return `"` + strings.Repeat("x", n-2) + `"` }

// historyLen returns the number of entries of ch's history in Redis.
func historyLen(t *testing.T, r *redisServer, prefix, ch string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(r.Do("XLEN", prefix+"history:{"+ch+"}"), ":"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHistoryMaxBytes: a channel's history is trimmed by the bytes of its
// data as well as by count, the newest publication always kept; a
// recovery reaching past what was trimmed is refused, never answered with
// a gap.
func TestHistoryMaxBytes(t *testing.T) {
	r := startRedis(t)
	ctx := context.Background()
	b := newBroker(t, r, redisbroker.Options{Prefix: "bytes:", MaxHistoryBytes: 10_000})
	ch := "chat:bytes"
	var last broker.StreamPosition
	for range 20 {
		last = publish(t, b, ch, jsonString(1000))
	}
	if n := historyLen(t, r, "bytes:", ch); n != 10 {
		t.Errorf("history holds %d publications of 1000 bytes, want 10 (10,000 bytes)", n)
	}
	since := broker.StreamPosition{Epoch: last.Epoch, Offset: 10}
	if pubs, _, err := b.History(ctx, ch, since, 0); err != nil || len(pubs) != 10 || pubs[0].Offset != 11 {
		t.Errorf("History since offset 10 = %d publications, %v; want 11 to 20", len(pubs), err)
	}
	since.Offset = 9
	if pubs, _, err := b.History(ctx, ch, since, 0); !errors.Is(err, broker.ErrUnrecoverable) {
		t.Errorf("History since offset 9, trimmed = %d publications, %v; want ErrUnrecoverable", len(pubs), err)
	}

	// A publication larger than the bound is kept alone.
	last = publish(t, b, ch, jsonString(20_000))
	if n := historyLen(t, r, "bytes:", ch); n != 1 {
		t.Errorf("history after a publication over the bound holds %d, want 1", n)
	}
	if pubs, _, err := b.History(ctx, ch, broker.StreamPosition{Epoch: last.Epoch, Offset: last.Offset - 1}, 0); err != nil || len(pubs) != 1 {
		t.Errorf("History of the large publication = %d, %v; want it", len(pubs), err)
	}
	// Small ones push it out again.
	for range 3 {
		last = publish(t, b, ch, jsonString(1000))
	}
	if n := historyLen(t, r, "bytes:", ch); n != 3 {
		t.Errorf("history holds %d, want the 3 small publications", n)
	}
}

// TestHistoryMaxBytesDefault: without MaxHistoryBytes a channel's history
// holds at most DefaultMaxHistoryBytes of data, though its count bound
// would allow more.
func TestHistoryMaxBytesDefault(t *testing.T) {
	r := startRedis(t)
	b := newBroker(t, r, redisbroker.Options{Prefix: "bytes:"})
	ch := "chat:large"
	const size = 64 << 10
	for range 100 {
		publish(t, b, ch, jsonString(size))
	}
	if n := historyLen(t, r, "bytes:", ch); n*size > 4<<20 || n < 4<<20/size-1 {
		t.Errorf("history holds %d publications of 64 KiB, want at most 4 MiB of them", n)
	}
}
