package redisbroker_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/broker/redisbroker"
)

// TestErrorPrefix: the broker's own errors start with its prefix, and
// those that wrap a broker sentinel start with the sentinel.
func TestErrorPrefix(t *testing.T) {
	const prefix = "herald: redisbroker: "
	ctx := context.Background()
	for _, opts := range []redisbroker.Options{{Addr: "127.0.0.1"}, {URL: "ftp://127.0.0.1"}} {
		if _, err := redisbroker.New(ctx, opts); err == nil || !strings.HasPrefix(err.Error(), prefix) {
			t.Errorf("New(%+v) = %v, want an error starting with %q", opts, err, prefix)
		}
	}

	r := startRedis(t)
	b := newBroker(t, r, redisbroker.Options{Prefix: "prefix:"})
	r.Do("SET", "prefix:stream:{chat:a}", "not a hash") // a Redis error reply, not an outage
	if _, err := b.Publish(ctx, "chat:a", []byte(`1`), broker.PublishOptions{}); err == nil || !strings.HasPrefix(err.Error(), prefix+"publish: ") {
		t.Errorf("Publish onto a key of the wrong type = %v, want an error starting with %q", err, prefix+"publish: ")
	}

	r.Stop()
	_, err := b.Position(ctx, "chat:b")
	if !errors.Is(err, broker.ErrUnavailable) || !strings.HasPrefix(err.Error(), broker.ErrUnavailable.Error()+": ") {
		t.Errorf("Position with Redis stopped = %v, want an error starting with %q", err, broker.ErrUnavailable)
	}
}
