package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker"
)

func TestDrainWindowFlag(t *testing.T) {
	var c serveConfig
	fs := serveFlags(stdio{out: io.Discard, err: io.Discard}, &c)
	if err := parseFlags(fs, nil); err != nil {
		t.Fatal(err)
	}
	if c.opts.DrainWindow != time.Second {
		t.Errorf("drain-window default %v, want 1s", c.opts.DrainWindow)
	}
	fs = serveFlags(stdio{out: io.Discard, err: io.Discard}, &c)
	if err := parseFlags(fs, []string{"--drain-window", "3s"}); err != nil {
		t.Fatal(err)
	}
	if c.opts.DrainWindow != 3*time.Second {
		t.Errorf("drain-window %v, want 3s", c.opts.DrainWindow)
	}
}

// The shutdown logs each step with its duration, so that the downtime of a
// restart can be read from the log.
func TestShutdownLogsEachStep(t *testing.T) {
	var c serveConfig
	fs := serveFlags(stdio{out: io.Discard, err: io.Discard}, &c)
	if err := parseFlags(fs, []string{"--data-dir", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if err := c.finish(fs); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	log := slog.New(slog.NewTextHandler(&out, nil))
	c.opts.Broker = broker.NewMemory(&broker.MemoryOptions{DataDir: c.dataDir, Logger: log})
	c.opts.Logger = log
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := serve(ctx, ln, &c, log); err != nil {
		t.Fatal(err)
	}
	logged := out.String()
	for _, step := range []string{`msg="shutting down"`, `msg="http server stopped" took=`, `msg="connections closed" took=`, `msg="broker closed" took=`, `msg=stopped took=`} {
		if !strings.Contains(logged, step) {
			t.Errorf("log lacks %s:\n%s", step, logged)
		}
	}
	if !strings.Contains(logged, "drain_window=1s") {
		t.Errorf("shutting down line lacks drain_window=1s:\n%s", logged)
	}
}
