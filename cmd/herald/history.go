package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/heraldhq/herald/client"
)

func init() {
	register(&command{name: "history", summary: "print a page of a channel's history as JSON lines, oldest first", run: runHistory})
}

// historyTimeout bounds the whole question: a page is one request.
var historyTimeout = 20 * time.Second

func runHistory(ctx context.Context, std stdio, args []string) error {
	var cf clientFlags
	fs := newFlagSet("history", "[--url URL] [--token T] [--ca-file PATH] [--limit N] [--before OFFSET] CHANNEL\n\n"+
		"Prints the newest held messages before OFFSET as JSON lines, oldest first, each with\n"+
		"its ts (ms since the Unix epoch) and from (the publishing connection) when it has them.\n"+
		"When older messages remain, stderr says which --before pages back to them.", std)
	cf.register(fs)
	limit := fs.Int("limit", client.DefaultHistoryLimit, fmt.Sprintf("the most messages to print, 1 to %d", client.MaxHistoryLimit))
	before := fs.Uint64("before", 0, "print only messages with an offset below this one (0: from the newest)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() != 1:
		return usageError{errors.New("want one CHANNEL")}
	case *limit < 1 || *limit > client.MaxHistoryLimit:
		return usageError{fmt.Errorf("--limit must be from 1 to %d", client.MaxHistoryLimit)}
	}
	opts, err := cf.options()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, historyTimeout)
	defer cancel()
	c, err := client.Dial(ctx, cf.url, opts)
	if err != nil {
		return cf.dialError(err)
	}
	defer c.Close()
	channel := fs.Arg(0)
	page, err := c.History(ctx, channel, &client.HistoryOptions{Limit: *limit, Before: *before})
	if err != nil {
		return cf.dialError(err)
	}
	if err := printPage(std.out, page); err != nil {
		return err
	}
	if older := page.Older(); older != nil {
		fmt.Fprintf(std.err, "older messages: herald history --before %d %s\n", older.Before, channel)
	}
	return nil
}

// historyLine is a message as herald history prints it.
type historyLine struct {
	Channel string          `json:"channel"`
	Offset  uint64          `json:"offset"`
	TS      int64           `json:"ts,omitempty"`
	From    *client.Member  `json:"from,omitempty"`
	Data    json.RawMessage `json:"data"`
}

// printPage writes page's messages as JSON lines, oldest first.
func printPage(w io.Writer, page *client.Page) error {
	enc := json.NewEncoder(w)
	for _, m := range page.Messages {
		line := historyLine{Channel: m.Channel, Offset: m.Offset, Data: m.Data}
		if !m.TS.IsZero() {
			line.TS = m.TS.UnixMilli()
		}
		if m.From != (client.Member{}) {
			line.From = &m.From
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
	return nil
}
