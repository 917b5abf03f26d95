package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald/protocol"
)

// Bounds of the history and backlog requests (PROTOCOL.md).
const (
	// MaxLast is the largest backlog Last may ask for.
	MaxLast = 1000
	// MaxHistoryLimit is the largest page History may ask for.
	MaxHistoryLimit = 1000
	// DefaultHistoryLimit is the size of a page when HistoryOptions.Limit
	// is zero.
	DefaultHistoryLimit = 100
)

// ErrEpochChanged is returned by History when HistoryOptions.Epoch is set and
// the channel's stream has another epoch: it was reset and its offsets
// restarted, so Before no longer points where the previous page ended.
var ErrEpochChanged = errors.New("herald: the channel's stream was reset (new epoch) while paging")

// HistoryOptions choose a page of a channel's history. A nil *HistoryOptions
// asks for the newest DefaultHistoryLimit messages.
type HistoryOptions struct {
	// Limit is the most messages the page holds, 1 to MaxHistoryLimit; zero
	// means DefaultHistoryLimit.
	Limit int
	// Before, when not zero, returns only messages with a smaller offset;
	// zero means from the newest.
	Before uint64
	// Epoch, when set, makes History fail with ErrEpochChanged unless the
	// channel's epoch is this one. Page.Older sets it.
	Epoch string
}

// Page is a part of a channel's history, as History returns it.
type Page struct {
	Channel string
	// Messages are the newest held messages before HistoryOptions.Before,
	// oldest first.
	Messages []Message
	// Epoch and Offset are the channel's epoch and newest offset when the
	// server answered.
	Epoch  string
	Offset uint64
	// More is true when the server holds messages older than the first of
	// Messages.
	More bool

	limit int
}

// Older returns the options that ask for the page just before p, with the
// same limit, or nil when there is none (More is false).
func (p *Page) Older() *HistoryOptions {
	if !p.More || len(p.Messages) == 0 {
		return nil
	}
	return &HistoryOptions{Limit: p.limit, Before: p.Messages[0].Offset, Epoch: p.Epoch}
}

// History returns a page of channel's history, the newest messages first
// chosen and then returned oldest first; Page.Older pages further back. It
// needs no subscription, but the same rights as subscribing to channel.
// Without a connection it waits for the next one until ctx ends; a
// connection lost before the answer is asked again on the next one. Errors
// from the server wrap a *protocol.Error (bad_request, forbidden, ...).
func (c *Client) History(ctx context.Context, channel string, opts *HistoryOptions) (*Page, error) {
	var o HistoryOptions
	if opts != nil {
		o = *opts
	}
	what := "history " + channel
	if err := checkHistory(channel, o); err != nil {
		return nil, fmt.Errorf("herald: %s: %w", what, err)
	}
	f, err := c.askServer(ctx, what, func(id uint64) protocol.Frame {
		h := &protocol.History{ID: id, Channel: channel}
		if o.Limit != 0 {
			h.Limit = &o.Limit
		}
		if o.Before != 0 {
			h.Before = &o.Before
		}
		return h
	})
	if err != nil {
		return nil, err
	}
	pf, ok := f.(*protocol.Page)
	if !ok {
		return nil, fmt.Errorf("herald: %s: server answered %s", what, f.Type())
	}
	if o.Epoch != "" && pf.Epoch != o.Epoch {
		return nil, fmt.Errorf("%w: %s was %s, is %s", ErrEpochChanged, channel, o.Epoch, pf.Epoch)
	}
	return newPage(channel, pf, o.Limit), nil
}

func checkHistory(channel string, o HistoryOptions) error {
	if err := protocol.ValidateChannel(channel); err != nil {
		return &protocol.Error{Code: protocol.CodeInvalidChannel, Message: err.Error()}
	}
	if o.Limit < 0 || o.Limit > MaxHistoryLimit {
		return &protocol.Error{Code: protocol.CodeBadRequest,
			Message: fmt.Sprintf("limit must be 1 to %d", MaxHistoryLimit)}
	}
	return nil
}

func newPage(channel string, f *protocol.Page, limit int) *Page {
	p := &Page{Channel: channel, Epoch: f.Epoch, Offset: f.Offset, More: f.More,
		Messages: make([]Message, 0, len(f.Messages)), limit: limit}
	for _, m := range f.Messages {
		p.Messages = append(p.Messages, newMessage(channel, m.Offset, m.Data, m.TS, m.From))
	}
	return p
}

// newMessage makes the Message handed to the application.
func newMessage(channel string, offset uint64, data []byte, ts int64, from *protocol.From) Message {
	m := Message{Channel: channel, Offset: offset, Data: data}
	if ts > 0 {
		m.TS = time.UnixMilli(ts)
	}
	if from != nil {
		m.From = Member{Client: from.Client, User: from.User}
	}
	return m
}
