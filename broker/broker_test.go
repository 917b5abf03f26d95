package broker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker"
)

// TestHistoryPolicy: a channel takes its namespace's bounds, zero fields of
// which come from Default, and the other channels take Default.
func TestHistoryPolicy(t *testing.T) {
	ns := map[string]broker.HistoryOptions{
		"size": {Size: 2},
		"ttl":  {TTL: time.Second},
		"":     {Size: 7, TTL: time.Minute},
	}
	p := broker.HistoryPolicy{Default: broker.HistoryOptions{Size: 5, TTL: time.Hour}, Namespaces: ns}.WithDefaults()
	for channel, want := range map[string]broker.HistoryOptions{
		"size:a":   {Size: 2, TTL: time.Hour},
		"ttl:a:b":  {Size: 5, TTL: time.Second},
		"other:a":  {Size: 5, TTL: time.Hour},
		"sizeless": {Size: 7, TTL: time.Minute}, // namespace ""
	} {
		if got := p.For(channel); got != want {
			t.Errorf("For(%q) = %+v, want %+v", channel, got, want)
		}
	}
	if got := p.ShortestTTL(); got != time.Second {
		t.Errorf("ShortestTTL = %v, want 1s", got)
	}
	ns["size"] = broker.HistoryOptions{Size: 99}
	if got := p.For("size:a").Size; got != 2 {
		t.Errorf("after the caller changed its map, For(size:a).Size = %d, want 2: WithDefaults must copy", got)
	}
}

// TestHistoryPolicyZero: the zero policy bounds every channel by the
// package defaults.
func TestHistoryPolicyZero(t *testing.T) {
	p := broker.HistoryPolicy{}.WithDefaults()
	want := broker.HistoryOptions{Size: broker.DefaultHistorySize, TTL: broker.DefaultHistoryTTL}
	if got := p.For("chat:1"); got != want {
		t.Errorf("For = %+v, want %+v", got, want)
	}
	if got := p.ShortestTTL(); got != broker.DefaultHistoryTTL {
		t.Errorf("ShortestTTL = %v, want %v", got, broker.DefaultHistoryTTL)
	}
}

// TestErrorPrefix: every sentinel of the package starts with its prefix.
func TestErrorPrefix(t *testing.T) {
	for _, err := range []error{
		broker.ErrUnrecoverable, broker.ErrUnavailable, broker.ErrClosed,
		broker.ErrNoDeliver, broker.ErrRunning, broker.ErrTooManyChannels, broker.ErrDataDirInUse,
	} {
		if !strings.HasPrefix(err.Error(), "herald: broker: ") {
			t.Errorf("%q does not start with %q", err, "herald: broker: ")
		}
	}
}
