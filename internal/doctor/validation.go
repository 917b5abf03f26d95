package doctor

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// The frames the validation check sends.
const (
	badJSON     = `{"type":"publish","channel":`
	unknownType = `{"type":"herald-doctor-unknown","id":2}`
)

// step is the outcome of one probe of a check that runs several.
type step struct {
	status  Status
	summary string
	hint    string
}

// merge folds steps into ch: the worst status, the summaries joined, the
// hints of the steps that did not pass.
func merge(ch Check, steps ...step) Check {
	var sums, hints []string
	for _, s := range steps {
		ch.Status = worse(ch.Status, s.status)
		sums = append(sums, s.summary)
		if s.status != Pass && s.hint != "" && !slices.Contains(hints, s.hint) {
			hints = append(hints, s.hint)
		}
	}
	ch.Summary = strings.Join(sums, "; ")
	ch.Hint = strings.Join(hints, "; ")
	return ch
}

// badProbe is one probe of the validation check: something a careful
// client never sends, which may crash a careless server. label names it in
// the validation summary, what in the liveness finding ("it received
// ..."); cause and hint explain a server that went down right after it.
type badProbe struct {
	label, what, cause, hint string
	run                      func() step
}

// Hints for a server that went down right after a bad input.
const (
	crashOnMessageHint = "one bad message from any client takes the whole service down: catch errors where messages are parsed and handled (in Node, JSON.parse throws, and an exception in a 'message' listener ends the process); with Node's ws, also add an 'error' listener to every socket"
	crashOnFrameHint   = "one bad frame from any client takes the whole service down: handle errors per connection; with Node's ws, add an 'error' listener to every socket (ws.on('error', ...)): the 'error' event it emits for a protocol error ends the process when nothing listens"
)

// validation sends frames a careful client never would, each between two
// liveness probes (see guarded): invalid JSON and, for Herald, an unknown
// type and an oversize message; and, for any endpoint, a frame RFC 6455
// forbids. It returns the validation check and the liveness check.
func (d *doctor) validation() (validation, liveness Check) {
	probes := []badProbe{{
		label: "invalid JSON", what: "a text frame that is not JSON",
		cause: "an exception thrown while parsing a message may crash the process",
		hint:  crashOnMessageHint, run: d.badJSON,
	}}
	if d.herald {
		probes = append(probes, badProbe{
			label: "unknown type", what: "a message of an unknown type",
			cause: "an exception thrown while handling a message may crash the process",
			hint:  crashOnMessageHint, run: d.unknownType,
		})
	}
	if limit := d.maxMessageBytes(); limit > 0 {
		probes = append(probes, badProbe{
			label: fmt.Sprintf("%d-byte message", limit+1), what: fmt.Sprintf("a %d-byte message, one byte over max_message_bytes", limit+1),
			cause: "an unhandled error on an oversize message may crash the process",
			hint:  crashOnFrameHint, run: func() step { return d.oversize(limit) },
		})
	}
	probes = append(probes, badProbe{
		label: "reserved opcode 0x3", what: "a frame with reserved opcode 0x3",
		cause: "an unhandled protocol error may crash the process",
		hint:  crashOnFrameHint, run: d.badFrame,
	})
	var steps []step
	for _, p := range probes {
		steps = append(steps, d.guarded(p))
	}
	if ic, ok := d.interrupted("validation"); ok {
		return ic, skipped("liveness", "interrupted")
	}
	return merge(Check{Name: "validation", Status: Pass}, steps...), d.liveness(len(probes))
}

func (d *doctor) maxMessageBytes() int64 {
	if d.herald && d.welcome != nil {
		return d.welcome.MaxMessageBytes
	}
	return 0
}

// dialReady connects and, for Herald, waits for welcome, so that what the
// check sends next meets an established session.
func (d *doctor) dialReady() (*conn, error) {
	c, err := d.dial(false)
	if err != nil {
		return nil, err
	}
	if d.herald {
		if _, err := c.readWelcome(d.wait(d.opts.Timeout)); err != nil {
			c.Close()
			return nil, fmt.Errorf("no welcome: %w", err)
		}
	}
	return c, nil
}

// badJSON sends a text frame that is not JSON. Herald must answer with an
// error and keep the connection; any endpoint must at least not drop it
// without a close frame.
func (d *doctor) badJSON() step {
	c, err := d.dialReady()
	if err != nil {
		return step{Inconclusive, "invalid JSON: could not connect: " + err.Error(), ""}
	}
	defer c.Close()
	c.write(ws.OpText, []byte(badJSON))
	if !d.herald {
		return d.badInputAnyEndpoint(c)
	}
	return d.expectError(c, 0, "bad_request", "invalid JSON")
}

// unknownType sends Herald a request of a type it does not know.
func (d *doctor) unknownType() step {
	c, err := d.dialReady()
	if err != nil {
		return step{Inconclusive, "unknown type: could not connect: " + err.Error(), ""}
	}
	defer c.Close()
	c.write(ws.OpText, []byte(unknownType))
	return d.expectError(c, 2, "unknown_type", "unknown type")
}

// expectError waits for Herald's error reply with code to the request id
// (0: a frame without id).
func (d *doctor) expectError(c *conn, id uint64, code, what string) step {
	r, closed, err := c.awaitReply(d.wait(d.opts.Timeout), func(r *reply) bool {
		return r.Type == "error" || r.ID == id && id != 0
	})
	got := describeReply(r, closed, err)
	s := step{Pass, fmt.Sprintf("%s -> %s", what, got), ""}
	switch {
	case err == nil && closed == nil && r.Type == "error" && r.Code == code:
		return s
	case ended(err):
		s.hint = fmt.Sprintf("the server dropped the connection on %s without a close frame, which looks like a crash of its connection handler: clients see 1006 and reconnect into the same failure; answer with an error and keep the connection", what)
	case closed != nil:
		s.hint = fmt.Sprintf("Herald's protocol answers %s with an error %s and keeps the connection open; this server closed it", what, code)
	default:
		s.hint = fmt.Sprintf("Herald's protocol answers %s with an error %s; clients rely on the code to tell their own mistakes from the server's", what, code)
	}
	s.status = Fail
	s.summary += ", want error " + code
	return s
}

// badInputAnyEndpoint judges an endpoint of unknown protocol: a reply, a
// close frame or silence are all acceptable; a connection dropped without
// a close frame is not. A ping frame probes that the connection is alive.
func (d *doctor) badInputAnyEndpoint(c *conn) step {
	const what = "invalid JSON"
	crashed := step{Fail, what + " -> ", "the server dropped the connection on invalid input without a close frame, which looks like a crash of its connection handler: clients see 1006 and reconnect into the same failure; answer with an error message, or close with 1003 or 1008"}
	f, err := c.nextData(d.wait(min(d.opts.Timeout, time.Second)))
	answer := "no reply"
	switch {
	case err == nil && f.op == ws.OpClose:
		code, reason := f.closeCode()
		return step{Pass, fmt.Sprintf("%s -> close %d %q", what, code, reason), ""}
	case err == nil:
		answer = "a reply"
	case ended(err):
		crashed.summary += describeEnd(err)
		return crashed
	}
	c.write(ws.OpPing, []byte("probe"))
	for {
		f, err := c.next(d.wait(d.opts.Timeout))
		switch {
		case ended(err):
			crashed.summary += answer + ", then " + describeEnd(err)
			return crashed
		case err != nil:
			return step{Warn, fmt.Sprintf("%s -> %s, and no pong to a ping frame after it", what, answer),
				"the server stopped answering after invalid input; it may have stalled the connection"}
		case f.op == ws.OpPing:
			c.write(ws.OpPong, f.payload)
		case f.op == ws.OpPong:
			return step{Pass, fmt.Sprintf("%s -> %s, connection still open", what, answer), ""}
		case f.op == ws.OpClose:
			code, reason := f.closeCode()
			return step{Pass, fmt.Sprintf("%s -> %s, then close %d %q", what, answer, code, reason), ""}
		}
	}
}

// oversize sends a text message one byte over Herald's max_message_bytes.
// The server should close with 1009 (it may do so from the frame header,
// before reading the payload, so the payload is written in the background).
func (d *doctor) oversize(limit int64) step {
	what := fmt.Sprintf("%d-byte message", limit+1)
	c, err := d.dialReady()
	if err != nil {
		return step{Inconclusive, what + ": could not connect: " + err.Error(), ""}
	}
	defer c.Close()
	payload := []byte(`{"type":"ping","pad":"` + strings.Repeat("x", int(limit)) + `"}`)[:limit+1]
	c.writeBackground(ws.NewFrame(ws.OpText, true, payload))
	s := step{Fail, what + " -> ", ""}
	f, err := c.nextData(d.wait(d.opts.Timeout))
	switch {
	case err != nil:
		s.summary += describeEnd(err)
	case f.op == ws.OpClose:
		code, reason := f.closeCode()
		s.summary += fmt.Sprintf("close %d %q", code, reason)
		if code == int(ws.StatusMessageTooBig) {
			s.status = Pass
			return s
		}
	default:
		s.summary += "a reply, connection still open"
		if r, ok := parseReply(f); ok {
			s.summary = what + " -> a " + r.String() + " reply"
		}
	}
	s.summary += ", want close 1009"
	s.hint = fmt.Sprintf("a message over max_message_bytes (%d) should close the connection with 1009, so the client knows the message, not the network, was the problem", limit)
	return s
}

// badFrame sends a frame with a reserved opcode. RFC 6455 says the server
// must fail the connection, and Herald sends close 1002 first.
func (d *doctor) badFrame() step {
	const what = "reserved opcode 0x3"
	c, err := d.dialReady()
	if err != nil {
		return step{Inconclusive, what + ": could not connect: " + err.Error(), ""}
	}
	defer c.Close()
	c.writeFrame(ws.NewFrame(ws.OpCode(0x3), true, nil))
	f, err := c.nextData(d.wait(d.opts.Timeout))
	switch {
	case err == nil && f.op == ws.OpClose:
		code, reason := f.closeCode()
		s := step{Pass, fmt.Sprintf("%s -> close %d %q", what, code, reason), ""}
		if code != int(ws.StatusProtocolError) {
			s.status = Warn
			s.hint = "a frame that breaks RFC 6455 is answered with close 1002 (protocol error); another code misleads the client about what went wrong"
		}
		return s
	case ended(err):
		return step{Warn, what + " -> " + describeEnd(err),
			"a frame that breaks RFC 6455 should get close 1002 before the connection ends; without it clients see 1006 and cannot tell a protocol bug from a network failure"}
	case err == nil:
		return step{Warn, what + " -> a reply, connection still open",
			"the server ignored a frame RFC 6455 says must fail the connection; its frame parser may accept other malformed input too"}
	}
	return step{Warn, what + " -> no answer, connection still open",
		"the server ignored a frame RFC 6455 says must fail the connection; its frame parser may accept other malformed input too"}
}
