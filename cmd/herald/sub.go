package main

import (
	"context"
	"crypto/tls"
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
	url    string
	token  string
	caFile string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.String("config", "", "YAML file with flag values (keys named like the flags)")
	fs.StringVar(&c.url, "url", defaultURL, "server WebSocket URL (ws:// or wss://)")
	fs.StringVar(&c.token, "token", "", "bearer token sent with the upgrade")
	fs.StringVar(&c.caFile, "ca-file", "", "wss: PEM file of the CA certificates to trust instead of the system's")
}

// options returns the client's options for the flags.
func (c *clientFlags) options() (*client.Options, error) {
	cfg, err := tlsConfig(false, c.caFile)
	if err != nil {
		return nil, err
	}
	return &client.Options{Token: c.token, TLSConfig: cfg}, nil
}

// dialError explains why the client could not connect or stopped.
func (c *clientFlags) dialError(err error) error {
	var cv *tls.CertificateVerificationError
	switch {
	case errors.As(err, &cv) && c.caFile == "":
		return fmt.Errorf("%w (if a private CA signed the server's certificate, pass that CA's PEM file with --ca-file)", err)
	case errors.Is(err, client.ErrTokenRequired):
		return fmt.Errorf("%s needs a token (the server answered %s): pass one with --token or HERALD_TOKEN", c.url, refusal(err))
	}
	return err
}

// refusal says how the server refused a connection: its close code and
// reason, or its HTTP status.
func refusal(err error) string {
	var ce *client.CloseError
	var he *client.HandshakeError
	switch {
	case errors.As(err, &ce) && ce.Reason != "":
		return fmt.Sprintf("close %d, %q", ce.Code, ce.Reason)
	case errors.As(err, &ce):
		return fmt.Sprintf("close %d", ce.Code)
	case errors.As(err, &he):
		return fmt.Sprintf("HTTP %d", he.Status)
	}
	return err.Error()
}

func runSub(ctx context.Context, std stdio, args []string) error {
	var cf clientFlags
	fs := newFlagSet("sub", "[--url URL] [--token T] [--ca-file PATH] [--count N] [--last N] CHANNEL...", std)
	cf.register(fs)
	count := fs.Int("count", 0, "exit after printing this many messages (0: run until interrupted)")
	last := fs.Int("last", 0, fmt.Sprintf("first print each channel's newest N held messages (0 to %d), then the live ones", client.MaxLast))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() == 0:
		return usageError{errors.New("missing CHANNEL")}
	case *count < 0:
		return usageError{errors.New("--count must not be negative")}
	case *last < 0 || *last > client.MaxLast:
		return usageError{fmt.Errorf("--last must be from 0 to %d", client.MaxLast)}
	}
	opts, err := cf.options()
	if err != nil {
		return err
	}
	events := &lockedWriter{w: std.err}
	defer events.close()
	out := &messagePrinter{w: &lockedWriter{w: std.out}, limit: *count, full: make(chan struct{})}
	defer out.w.close()

	opts.OnStateChange = func(ch client.StateChange) { printState(events, cf.url, ch) }
	c, err := client.Dial(ctx, cf.url, opts)
	if err != nil {
		return stopped(ctx, cf.dialError(err))
	}
	defer c.Close()
	for _, ch := range fs.Args() {
		_, err := c.Subscribe(ctx, ch, out.print,
			client.Last(*last),
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
		return cf.dialError(c.Err())
	}
}

// stopped turns an error caused by the interrupt into a normal end.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func printState(w *lockedWriter, url string, ch client.StateChange) {
	switch ch.State {
	case client.StateConnected:
		w.printf("connected to %s (session %s)\n", url, ch.Session)
	case client.StateDisconnected:
		w.printf("disconnected: %v; reconnecting in %s\n", ch.Err, ch.RetryIn.Round(time.Millisecond))
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
