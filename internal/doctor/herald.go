package doctor

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/gobwas/ws"
)

// reply holds the fields of every Herald frame the doctor looks at.
type reply struct {
	Type      string `json:"type"`
	ID        uint64 `json:"id"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	Channel   string `json:"channel"`
	Epoch     string `json:"epoch"`
	Offset    uint64 `json:"offset"`
	Recovered *bool  `json:"recovered"`

	Session         string `json:"session"`
	Server          string `json:"server"`
	PingIntervalMS  int64  `json:"ping_interval_ms"`
	PongTimeoutMS   int64  `json:"pong_timeout_ms"`
	MaxMessageBytes int64  `json:"max_message_bytes"`
}

func (r *reply) String() string {
	if r.Type == "error" {
		return fmt.Sprintf("error %s", r.Code)
	}
	return r.Type
}

// parseReply decodes a text frame as a Herald frame; ok is false when it is
// not a JSON object with a type.
func parseReply(f frame) (*reply, bool) {
	if f.op != ws.OpText {
		return nil, false
	}
	var r reply
	if json.Unmarshal(f.payload, &r) != nil || r.Type == "" {
		return nil, false
	}
	return &r, true
}

// sendJSON writes v as one text frame.
func (c *conn) sendJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.write(ws.OpText, b)
}

// awaitReply returns the first Herald frame before deadline that match
// accepts, answering pings and skipping other frames. A close frame is
// returned as closed.
func (c *conn) awaitReply(deadline time.Time, match func(*reply) bool) (r *reply, closed *frame, err error) {
	for {
		f, err := c.nextData(deadline)
		if err != nil {
			return nil, nil, err
		}
		if f.op == ws.OpClose {
			return nil, &f, nil
		}
		if r, ok := parseReply(f); ok && match(r) {
			return r, nil, nil
		}
	}
}

// byID matches the reply to request id: its success reply or its error.
func byID(id uint64) func(*reply) bool {
	return func(r *reply) bool { return r.ID == id }
}

// readWelcome waits for Herald's welcome frame.
func (c *conn) readWelcome(deadline time.Time) (*reply, error) {
	r, closed, err := c.awaitReply(deadline, func(r *reply) bool { return r.Type == "welcome" })
	switch {
	case err != nil:
		return nil, err
	case closed != nil:
		code, reason := closed.closeCode()
		return nil, fmt.Errorf("closed with %d %q before welcome", code, reason)
	}
	return r, nil
}

// describeReply says in words what a request got: a reply, a close frame
// or how the wait ended.
func describeReply(r *reply, closed *frame, err error) string {
	switch {
	case err != nil:
		return describeEnd(err)
	case closed != nil:
		code, reason := closed.closeCode()
		return fmt.Sprintf("close %d %q", code, reason)
	}
	return r.String()
}
