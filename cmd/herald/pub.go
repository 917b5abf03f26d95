package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/heraldhq/herald/client"
)

func init() {
	register(&command{name: "pub", summary: "publish a message, or each line of stdin, and print the acknowledgements", run: runPub})
}

// pubDialTimeout bounds the wait for the first connection: pub is a one-shot
// command and should fail rather than retry forever. It outlasts the
// client's wait for a welcome without a token (DialTimeout plus 5 s), so
// that a server that needs a token is reported as such.
var pubDialTimeout = 20 * time.Second

func runPub(ctx context.Context, std stdio, args []string) error {
	var cf clientFlags
	fs := newFlagSet("pub", "[--url URL] [--token T] [--ca-file PATH] CHANNEL [DATA]\n\nDATA is sent as JSON when it parses as JSON, else as a JSON string.\nWithout DATA each line of stdin is one message.", std)
	cf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return usageError{errors.New("want CHANNEL and at most one DATA argument")}
	}
	channel := fs.Arg(0)
	opts, err := cf.options()
	if err != nil {
		return err
	}
	events := &lockedWriter{w: std.err}
	defer events.close()

	dialCtx, cancel := context.WithTimeout(ctx, pubDialTimeout)
	defer cancel()
	opts.OnStateChange = func(ch client.StateChange) {
		if ch.State == client.StateDisconnected {
			printState(events, cf.url, ch)
		}
	}
	c, err := client.Dial(dialCtx, cf.url, opts)
	if err != nil {
		return cf.dialError(err)
	}
	defer c.Close()
	if fs.NArg() == 2 {
		return publishOne(ctx, c, std.out, channel, fs.Arg(1))
	}
	lines := bufio.NewScanner(std.in)
	lines.Buffer(nil, 16<<20)
	for lines.Scan() {
		if err := publishOne(ctx, c, std.out, channel, strings.TrimSuffix(lines.Text(), "\r")); err != nil {
			return err
		}
	}
	return lines.Err()
}

// publishOne publishes text (JSON when it parses as JSON, else a JSON
// string) and prints the acknowledgement.
func publishOne(ctx context.Context, c *client.Client, out io.Writer, channel, text string) error {
	data := json.RawMessage(text)
	if !json.Valid(data) {
		data, _ = json.Marshal(text)
	}
	offset, err := c.Publish(ctx, channel, data)
	if err != nil {
		return err
	}
	ack, _ := json.Marshal(struct {
		Channel string `json:"channel"`
		Offset  uint64 `json:"offset"`
	}{channel, offset})
	_, err = fmt.Fprintf(out, "%s\n", ack)
	return err
}
