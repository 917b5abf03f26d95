package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/heraldhq/herald/client"
)

func init() {
	register(&command{name: "sub", summary: "subscribe to channels and print their messages as JSON lines", run: runSub})
}

const defaultURL = "ws://127.0.0.1:8080/ws"

// clientFlags are the connection flags sub and pub share.
type clientFlags struct {
	url   string
	token string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.String("config", "", "YAML file with flag values (keys named like the flags)")
	fs.StringVar(&c.url, "url", defaultURL, "server WebSocket URL (ws:// or wss://)")
	fs.StringVar(&c.token, "token", "", "bearer token sent with the upgrade")
}

func runSub(ctx context.Context, std stdio, args []string) error {
	var cf clientFlags
	fs := newFlagSet("sub", "[--url URL] [--token T] [--count N] CHANNEL...", std)
	cf.register(fs)
	count := fs.Int("count", 0, "exit after printing this many messages (0: run until interrupted)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() == 0:
		return usageError{errors.New("missing CHANNEL")}
	case *count < 0:
		return usageError{errors.New("--count must not be negative")}
	}
	events := &lockedWriter{w: std.err}
	defer events.close()
	out := &messagePrinter{w: &lockedWriter{w: std.out}, limit: *count, full: make(chan struct{})}
	defer out.w.close()

	c, err := client.Dial(ctx, cf.url, clientOptions(&cf, events))
	if err != nil {
		return stopped(ctx, err)
	}
	defer c.Close()
	for _, ch := range fs.Args() {
		_, err := c.Subscribe(ctx, ch, out.print,
			client.OnRecovery(func(r client.Recovery) { printRecovery(events, r) }),
			client.OnError(func(err error) { events.printf("%s: subscription ended: %v\n", ch, err) }))
		if err != nil {
			return stopped(ctx, err)
		}
		events.printf("subscribed to %s\n", ch)
	}
	select {
	case <-ctx.Done():
		return nil // interrupted: a normal end
	case <-out.full:
		return nil
	case <-c.Done():
		return c.Err()
	}
}

// stopped turns an error caused by the interrupt into a normal end.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// clientOptions returns the client's options for the flags, reporting
// connection events on events.
func clientOptions(cf *clientFlags, events *lockedWriter) *client.Options {
	return &client.Options{
		Token:         cf.token,
		OnStateChange: func(ch client.StateChange) { printState(events, cf.url, ch) },
	}
}

func printState(w *lockedWriter, url string, ch client.StateChange) {
	switch ch.State {
	case client.StateConnected:
		w.printf("connected to %s (session %s)\n", url, ch.Session)
	case client.StateDisconnected:
		w.printf("disconnected: %v; reconnecting in %s\n", ch.Err, ch.RetryIn.Round(time.Millisecond))
	case client.StateClosed:
		if ch.Err != nil {
			w.printf("stopped: %v\n", ch.Err)
		}
	}
}

func printRecovery(w *lockedWriter, r client.Recovery) {
	switch {
	case r.Recovered && r.Position.Offset <= r.Since.Offset:
		w.printf("%s: recovered=true: nothing missed after offset %d\n", r.Channel, r.Since.Offset)
		return
	case r.Recovered:
		w.printf("%s: recovered=true: replaying offsets %d to %d\n", r.Channel, r.Since.Offset+1, r.Position.Offset)
		return
	}
	w.printf("%s: recovered=false: messages after offset %d (epoch %s) were missed; continuing after offset %d (epoch %s)\n",
		r.Channel, r.Since.Offset, r.Since.Epoch, r.Position.Offset, r.Position.Epoch)
}

// messagePrinter writes messages as JSON lines, at most limit of them
// (0: no limit), and closes full after the last.
type messagePrinter struct {
	w       *lockedWriter
	limit   int
	mu      sync.Mutex
	printed int
	full    chan struct{}
}

type messageLine struct {
	Channel string          `json:"channel"`
	Offset  uint64          `json:"offset"`
	Data    json.RawMessage `json:"data"`
}

func (p *messagePrinter) print(m client.Message) {
	line, err := json.Marshal(messageLine{m.Channel, m.Offset, m.Data})
	if err != nil {
		return // the server sent data that is not JSON; nothing to print
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.limit > 0 && p.printed >= p.limit {
		return
	}
	p.w.printf("%s\n", line)
	p.printed++
	if p.printed == p.limit {
		close(p.full)
	}
}

// lockedWriter serializes writes from the client's callbacks, and drops
// those that come after close, once the command has returned.
type lockedWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		fmt.Fprintf(l.w, format, args...)
	}
}

func (l *lockedWriter) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}
