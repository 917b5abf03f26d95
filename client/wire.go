package client

import (
	"encoding/json"
	"errors"

	"github.com/heraldhq/herald/protocol"
)

// This file holds the frames of PROTOCOL.md's message metadata, backlog,
// history page and presence sections as the client sends and reads them,
// and decode, which turns what the server sends into frames.

// Frame types of the history and presence requests and their answers.
const (
	typeHistory  = "history"
	typePage     = "page"
	typePresence = "presence"
	typePresent  = "present"
	typeJoin     = "join"
	typeLeave    = "leave"
)

// subscribeFrame is a subscribe that may ask for a backlog (last).
type subscribeFrame struct {
	ID      uint64                   `json:"id,omitempty"`
	Channel string                   `json:"channel"`
	Since   *protocol.StreamPosition `json:"since,omitempty"`
	Last    int                      `json:"last,omitempty"`
}

func (*subscribeFrame) Type() string        { return protocol.TypeSubscribe }
func (f *subscribeFrame) RequestID() uint64 { return f.ID }

// historyFrame asks for a page of a channel's history.
type historyFrame struct {
	ID      uint64 `json:"id"`
	Channel string `json:"channel"`
	Limit   int    `json:"limit,omitempty"`
	Before  uint64 `json:"before,omitempty"`
}

func (*historyFrame) Type() string        { return typeHistory }
func (f *historyFrame) RequestID() uint64 { return f.ID }

// presenceFrame asks who is subscribed to a channel.
type presenceFrame struct {
	ID        uint64 `json:"id"`
	Channel   string `json:"channel"`
	CountOnly bool   `json:"count_only,omitempty"`
}

func (*presenceFrame) Type() string        { return typePresence }
func (f *presenceFrame) RequestID() uint64 { return f.ID }

// messageMeta is what a message carries beside channel, offset and data.
type messageMeta struct {
	TS   int64   `json:"ts,omitempty"`
	From *Member `json:"from,omitempty"`
}

// messageFrame is a message with its metadata.
type messageFrame struct {
	*protocol.Message
	messageMeta
}

// pageMessage is one message of a page.
type pageMessage struct {
	Offset uint64          `json:"offset"`
	Data   json.RawMessage `json:"data"`
	messageMeta
}

// pageFrame answers history.
type pageFrame struct {
	ID       uint64        `json:"id"`
	Channel  string        `json:"channel"`
	Epoch    string        `json:"epoch"`
	Offset   uint64        `json:"offset"`
	More     bool          `json:"more"`
	Messages []pageMessage `json:"messages"`
}

func (*pageFrame) Type() string { return typePage }

// presentFrame answers presence.
type presentFrame struct {
	ID        uint64   `json:"id"`
	Channel   string   `json:"channel"`
	Clients   int      `json:"clients"`
	Users     int      `json:"users"`
	Members   []Member `json:"members"`
	Truncated bool     `json:"truncated"`
}

func (*presentFrame) Type() string { return typePresent }

// memberFrame is a join or a leave.
type memberFrame struct {
	typ     string
	Channel string `json:"channel"`
	Member  Member `json:"member"`
}

func (f *memberFrame) Type() string { return f.typ }

// decode reads one frame from the server: those of protocol.Decode, a
// message with its metadata as a *messageFrame, and the answers and events
// of history and presence.
func decode(payload []byte) (protocol.Frame, error) {
	f, err := protocol.Decode(payload)
	var pe *protocol.Error
	switch {
	case err == nil:
		if m, ok := f.(*protocol.Message); ok {
			mf := &messageFrame{Message: m}
			return mf, json.Unmarshal(payload, &mf.messageMeta)
		}
		return f, nil
	case !errors.As(err, &pe) || pe.Code != protocol.CodeUnknownType:
		return nil, err
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(payload, &head); err != nil {
		return nil, err
	}
	var out protocol.Frame
	switch head.Type {
	case typePage:
		out = new(pageFrame)
	case typePresent:
		out = new(presentFrame)
	case typeJoin, typeLeave:
		out = &memberFrame{typ: head.Type}
	default:
		return nil, err
	}
	return out, json.Unmarshal(payload, out)
}
