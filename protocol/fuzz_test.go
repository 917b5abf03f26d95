package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/heraldhq/herald/protocol"
)

// fuzzSeeds are valid frames of every type and broken frames of every kind
// PROTOCOL.md names.
var fuzzSeeds = []string{
	`{"type":"hello","id":1,"token":"tok","client":"herald-js/0.1"}`,
	`{"type":"subscribe","id":2,"channel":"chat"}`,
	`{"type":"subscribe","id":2,"channel":"chat","since":{"epoch":"e7Kq","offset":41}}`,
	`{"type":"unsubscribe","id":3,"channel":"chat"}`,
	`{"type":"publish","id":4,"channel":"chat","data":{"text":"hi"},"key":"k-01J9"}`,
	`{"type":"publish","channel":"chat","data":null}`,
	`{"type":"publish","channel":"chat","data": [1, "<&>\u2028" , {"a" : 2.50e3}] }`,
	`{"type":"ping","id":5}`,
	`{"type":"refresh","id":6,"token":"new"}`,
	`{"type":"welcome","id":1,"session":"s_8f3k2","server":"herald/0.1.0","ping_interval_ms":25000,"pong_timeout_ms":15000,"max_message_bytes":65536,"user":"alice"}`,
	`{"type":"subscribed","id":2,"channel":"chat","epoch":"e7Kq","offset":44,"recovered":true}`,
	`{"type":"subscribed","channel":"chat","epoch":"e","offset":0,"recovered":false}`,
	`{"type":"unsubscribed","id":3,"channel":"chat"}`,
	`{"type":"published","id":4,"channel":"chat","offset":45}`,
	`{"type":"pong","id":5}`,
	`{"type":"refreshed","id":6,"expires_at":1767225600}`,
	`{"type":"message","channel":"chat","offset":45,"data":{"text":"hi"}}`,
	`{"type":"error","id":4,"code":"rate_limited","message":"slow down","retry_after_ms":250}`,
	`{"type":"subscribe","id":7,"channel":"chat","future":{"x":[1,2]}}`,
	``,
	`hello`,
	`{"type":"ping","id":1`,
	`{"type":"ping"} x`,
	`[{"type":"ping"}]`,
	`"ping"`,
	`42`,
	`null`,
	`{}`,
	`{"type":1,"id":2}`,
	`{"type":null}`,
	`{"type":"shout","id":9}`,
	`{"type":"subscribe","id":10,"channel":""}`,
	`{"type":"subscribe","id":10,"channel":"` + strings.Repeat("a", 256) + `"}`,
	`{"type":"subscribe","id":10,"channel":"chat room"}`,
	`{"type":"subscribe","id":10,"channel":"#chat"}`,
	`{"type":"subscribe","id":10,"channel":"caf\u00e9"}`,
	`{"type":"publish","id":16,"channel":"chat"}`,
	`{"type":"subscribe","id":18,"channel":5}`,
	`{"type":"ping","id":-1}`,
	`{"type":"ping","id":0}`,
	`{"type":"ping","id":1.5}`,
	`{"type":"ping","id":"5"}`,
	`{"type":"publish","channel":"c","data":1,"key":"` + strings.Repeat("k", 65) + `"}`,
	`{"type":"subscribe","channel":"c","since":"e:1"}`,
	`{"type":"subscribe","channel":"c","since":{"epoch":1,"offset":-1}}`,
	`{"type":"subscribe","channel":"c","Channel":"a b"}`,
	`{"type":"publish","channel":"c","data":1,"Data":null,"data":2}`,
	"{\"type\":\"hello\",\"token\":\"\xff\xfe\"}",
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		frame, err := protocol.Decode(data)
		if err != nil {
			checkDecodeError(t, data, frame, err)
			return
		}
		checkFrame(t, data, frame)
		enc, err := protocol.Encode(frame)
		if err != nil {
			t.Fatalf("Encode(Decode(%q)) = %v", data, err)
		}
		if !json.Valid(enc) || !bytes.HasPrefix(enc, []byte(`{"type":"`+frame.Type()+`"`)) {
			t.Fatalf("Encode(Decode(%q)) = %s: not JSON with type first", data, enc)
		}
		again, err := protocol.Decode(enc)
		if err != nil {
			t.Fatalf("Decode(%s) after encoding a decoded frame: %v", enc, err)
		}
		if !reflect.DeepEqual(again, frame) {
			t.Fatalf("round trip through %s\n got %#v\nwant %#v", enc, again, frame)
		}
		if enc2, err := protocol.Encode(again); err != nil || !bytes.Equal(enc2, enc) {
			t.Fatalf("Encode is not stable: %s then %s (%v)", enc, enc2, err)
		}
	})
}

func checkDecodeError(t *testing.T, data []byte, frame protocol.Frame, err error) {
	t.Helper()
	if frame != nil {
		t.Fatalf("Decode(%q) returned frame %#v with error %v", data, frame, err)
	}
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		t.Fatalf("Decode(%q) error %T %v is not a *protocol.Error", data, err, err)
	}
	switch pe.Code {
	case protocol.CodeBadRequest, protocol.CodeUnknownType, protocol.CodeInvalidChannel:
	default:
		t.Fatalf("Decode(%q) error code %q", data, pe.Code)
	}
	if pe.ID != 0 && !bytes.Contains(data, []byte("id")) && !bytes.Contains(data, []byte(`\u`)) {
		t.Fatalf("Decode(%q) error carries id %d the frame has not", data, pe.ID)
	}
}

// checkFrame checks the rules a successfully decoded frame keeps.
func checkFrame(t *testing.T, data []byte, frame protocol.Frame) {
	t.Helper()
	var channel string
	switch f := frame.(type) {
	case *protocol.Subscribe:
		channel = f.Channel
	case *protocol.Unsubscribe:
		channel = f.Channel
	case *protocol.Publish:
		channel = f.Channel
		if len(f.Key) > protocol.MaxKeyBytes {
			t.Fatalf("Decode(%q) accepted a %d-byte key", data, len(f.Key))
		}
		if !json.Valid(f.Data) {
			t.Fatalf("Decode(%q) gave data %q, not JSON", data, f.Data)
		}
	case *protocol.Message:
		if !json.Valid(f.Data) {
			t.Fatalf("Decode(%q) gave data %q, not JSON", data, f.Data)
		}
		return
	case *protocol.Hello:
		if f.Token == "" {
			t.Fatalf("Decode(%q) accepted hello without token", data)
		}
		return
	case *protocol.Refresh:
		if f.Token == "" {
			t.Fatalf("Decode(%q) accepted refresh without token", data)
		}
		return
	default:
		return
	}
	if err := protocol.ValidateChannel(channel); err != nil {
		t.Fatalf("Decode(%q) accepted channel %q: %v", data, channel, err)
	}
}
