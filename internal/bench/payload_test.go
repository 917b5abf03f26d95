package bench

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/heraldhq/herald/protocol"
)

func TestPayloadRoundTrip(t *testing.T) {
	sent := time.Unix(1767225600, 123456789)
	data := appendPayload(nil, 42, sent, 100)
	if len(data) != 100 || !json.Valid(data) {
		t.Fatalf("payload %q: %d bytes, valid JSON %v", data, len(data), json.Valid(data))
	}
	msg := protocol.AppendMessage(nil, "bench:x", 7, 1767225600123, &protocol.From{Client: "s_1", User: "u"}, data)
	for name, parse := range map[string]func([]byte) (sample, bool){
		"parser":       newMessageParser("bench:x").parse,
		"other":        newMessageParser("other").parse,
		"parseMessage": parseMessage,
	} {
		s, ok := parse(msg)
		if !ok || s.offset != 7 || s.seq != 42 || s.sent != sent.UnixNano() {
			t.Fatalf("%s(%s) = %+v, %v", name, msg, s, ok)
		}
	}
	if seq, ok := parseSeq(data); !ok || seq != 42 {
		t.Fatalf("parseSeq = %d, %v", seq, ok)
	}
	if len(appendPayload(nil, 1, sent, 10)) < 10 {
		t.Fatal("a payload shorter than its fields was cut")
	}
}

func TestParseReply(t *testing.T) {
	for _, c := range []struct {
		in     string
		want   reply
		wantOK bool
	}{
		{`{"type":"published","id":17,"channel":"c","offset":3}`, reply{17, true}, true},
		{`{"type":"error","id":18,"code":"rate_limited","message":"x","retry_after_ms":5}`, reply{18, false}, true},
		{`{"type":"pong","id":19}`, reply{}, false},
	} {
		got, ok := parseReply([]byte(c.in))
		if got != c.want || ok != c.wantOK {
			t.Errorf("parseReply(%s) = %+v, %v", c.in, got, ok)
		}
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	msg := protocol.AppendMessage(nil, "bench", 7, 1767225600123, nil, appendPayload(nil, 42, time.Now(), 100))
	mp := newMessageParser("bench")
	if n := testing.AllocsPerRun(100, func() { mp.parse(msg); parseMessage(msg) }); n != 0 {
		t.Errorf("parsing allocates %v times", n)
	}
}

// TestChatPayload: a chat payload has the requested size, is valid JSON,
// carries the sequence number where readers find it, and differs from one
// publication to the next.
// (A size below the fixed fields, about 900 bytes, gives a longer payload.)
func TestChatPayload(t *testing.T) {
	sent := time.Now()
	for seq := range uint64(500) {
		if p := appendChatPayload(nil, seq, sent, 1024); len(p) != 1024 || !json.Valid(p) {
			t.Fatalf("chat payload of %d bytes, valid %v: %s", len(p), json.Valid(p), p)
		}
	}
	a, b := appendChatPayload(nil, 7, sent, 1024), appendChatPayload(nil, 8, sent, 1024)
	if seq, ok := parseSeq(a); !ok || seq != 7 {
		t.Fatalf("seq %d %v", seq, ok)
	}
	if bytes.Equal(a[40:], b[40:]) {
		t.Fatal("two publications with the same chat text")
	}
}
