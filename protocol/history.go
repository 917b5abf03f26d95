package protocol

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Frame types of history pages.
const (
	TypeHistory = "history"
	TypePage    = "page"
)

// Bounds of a subscribe's backlog and of a history page.
const (
	// MaxLast is the largest backlog a subscribe may ask for with last.
	MaxLast = 1000
	// MaxPageLimit is the largest limit of a history request.
	MaxPageLimit = 1000
	// DefaultPageLimit is the limit of a history request without one.
	DefaultPageLimit = 100
)

// From is the connection a publication came from, in the shape of a
// presence Member: its session id and, when it was authenticated, its user
// id. The server fills it from its own view of the connection, never from
// the publish request.
type From = Member

// History asks for one page of a channel's history: the newest Limit held
// messages with an offset below Before. Nil Limit means DefaultPageLimit;
// nil Before means from the newest.
type History struct {
	ID      uint64  `json:"id,omitempty"`
	Channel string  `json:"channel"`
	Limit   *int    `json:"limit,omitempty"`
	Before  *uint64 `json:"before,omitempty"`
}

// Page answers History. Messages are in ascending offset order; Offset and
// Epoch are the channel's newest offset and its epoch; More says history
// holds messages older than the first one returned.
type Page struct {
	ID       uint64        `json:"id,omitempty"`
	Channel  string        `json:"channel"`
	Epoch    string        `json:"epoch"`
	Offset   uint64        `json:"offset"`
	More     bool          `json:"more"`
	Messages []PageMessage `json:"messages"`
}

// PageMessage is one message of a page: a message frame without its type
// and channel.
type PageMessage struct {
	Offset uint64          `json:"offset"`
	TS     int64           `json:"ts,omitempty"`
	From   *From           `json:"from,omitempty"`
	Data   json.RawMessage `json:"data"`
}

func (*History) Type() string         { return TypeHistory }
func (*Page) Type() string            { return TypePage }
func (f *History) RequestID() uint64  { return f.ID }
func (f *History) PageLimit() int     { return pageLimit(f.Limit) }
func (f *History) PageBefore() uint64 { return pageBefore(f.Before) }

func pageLimit(l *int) int {
	if l == nil {
		return DefaultPageLimit
	}
	return *l
}

func pageBefore(b *uint64) uint64 {
	if b == nil {
		return 0
	}
	return *b
}

// CheckPage checks a history request's limit and before (nil: absent), as
// a history frame and the HTTP API check them.
func CheckPage(limit *int, before *uint64) *Error {
	if limit != nil && (*limit < 1 || *limit > MaxPageLimit) {
		return badRequest(0, fmt.Sprintf("history: limit must be an integer from 1 to %d", MaxPageLimit))
	}
	if before != nil && *before == 0 {
		return badRequest(0, "history: before must be an offset greater than 0")
	}
	return nil
}

func (f *History) check() *Error {
	if e := checkChannel(f.Channel); e != nil {
		return e
	}
	return CheckPage(f.Limit, f.Before)
}

// checkLast applies the rules of a subscribe's last.
func (f *Subscribe) checkLast() *Error {
	switch {
	case f.Last < 0 || f.Last > MaxLast:
		return badRequest(0, fmt.Sprintf("subscribe: last must be an integer from 0 to %d", MaxLast))
	case f.Last > 0 && f.Since != nil:
		return badRequest(0, "subscribe: last and since cannot be combined")
	}
	return nil
}

// encodePage writes a page with every message's data as it is.
func encodePage(f *Page) ([]byte, error) {
	out := []byte(`{"type":"page"`)
	if f.ID != 0 {
		out = append(out, `,"id":`...)
		out = strconv.AppendUint(out, f.ID, 10)
	}
	out = append(out, `,"channel":`...)
	out = appendString(out, f.Channel)
	out = append(out, `,"epoch":`...)
	out = appendString(out, f.Epoch)
	out = append(out, `,"offset":`...)
	out = strconv.AppendUint(out, f.Offset, 10)
	out = append(out, `,"more":`...)
	out = strconv.AppendBool(out, f.More)
	out = append(out, `,"messages":[`...)
	for i, m := range f.Messages {
		if i > 0 {
			out = append(out, ',')
		}
		if len(m.Data) > 0 && !json.Valid(m.Data) {
			return nil, fmt.Errorf("herald: protocol: encode page: data of offset %d is not valid JSON", m.Offset)
		}
		out = append(out, `{"offset":`...)
		out = appendMeta(out, m.Offset, m.TS, m.From, m.Data)
	}
	return append(out, "]}"...), nil
}

// appendMeta appends a message's offset value, ts, from and data, and the
// closing brace: what a message frame and a page's message share.
func appendMeta(dst []byte, offset uint64, ts int64, from *From, data []byte) []byte {
	dst = strconv.AppendUint(dst, offset, 10)
	if ts != 0 {
		dst = append(dst, `,"ts":`...)
		dst = strconv.AppendInt(dst, ts, 10)
	}
	if from != nil {
		dst = append(dst, `,"from":{"client":`...)
		dst = AppendQuoted(dst, from.Client)
		if from.User != "" {
			dst = append(dst, `,"user":`...)
			dst = AppendQuoted(dst, from.User)
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `,"data":`...)
	if len(data) == 0 {
		dst = append(dst, "null"...)
	}
	dst = append(dst, data...)
	return append(dst, '}')
}

// AppendQuoted appends s as a JSON string, without allocating. Invalid
// UTF-8 is written as U+FFFD, as encoding/json does.
func AppendQuoted(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}
