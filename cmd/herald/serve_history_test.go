package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/heraldhq/herald/broker"
)

// TestServeNamespaceHistory: --history-size bounds every channel, and a
// namespace of the config file bounds its own channels, in the broker
// herald serve opens.
func TestServeNamespaceHistory(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(cfg, []byte("namespaces:\n  short: {history-size: 2}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var c serveConfig
	fs := serveFlags(stdio{out: io.Discard, err: io.Discard}, &c)
	if err := parseFlags(fs, []string{"--config", cfg, "--history-size", "4"}); err != nil {
		t.Fatal(err)
	}
	if err := c.finish(fs); err != nil {
		t.Fatal(err)
	}
	b, err := openBroker(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	for channel, kept := range map[string]int{"short:a": 2, "other:a": 4} {
		start, err := b.Position(ctx, channel)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if _, err := b.Publish(ctx, channel, []byte(`1`), broker.PublishOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		since := broker.StreamPosition{Epoch: start.Epoch, Offset: uint64(5 - kept)}
		if pubs, _, err := b.History(ctx, channel, since, 0); err != nil || len(pubs) != kept {
			t.Errorf("%s: History of the last %d = %d publications, %v; want them all", channel, kept, len(pubs), err)
		}
		since.Offset--
		if _, _, err := b.History(ctx, channel, since, 0); !errors.Is(err, broker.ErrUnrecoverable) {
			t.Errorf("%s: History of the last %d = %v, want ErrUnrecoverable (%d kept)", channel, kept+1, err, kept)
		}
	}
}
