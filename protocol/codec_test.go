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

func ptr[T any](v T) *T { return &v }

func TestDecodeValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want protocol.Frame
	}{
		{"hello", `{"type":"hello","id":1,"token":"tok","client":"herald-js/0.1"}`,
			&protocol.Hello{ID: 1, Token: "tok", Client: "herald-js/0.1"}},
		{"hello without id", `{"type":"hello","token":"tok"}`, &protocol.Hello{Token: "tok"}},
		{"subscribe", `{"type":"subscribe","id":2,"channel":"chat"}`,
			&protocol.Subscribe{ID: 2, Channel: "chat"}},
		{"subscribe since", `{"type":"subscribe","id":2,"channel":"chat","since":{"epoch":"e7Kq","offset":41}}`,
			&protocol.Subscribe{ID: 2, Channel: "chat", Since: &protocol.StreamPosition{Epoch: "e7Kq", Offset: 41}}},
		{"subscribe since null", `{"type":"subscribe","channel":"chat","since":null}`,
			&protocol.Subscribe{Channel: "chat"}},
		{"unsubscribe", `{"type":"unsubscribe","id":3,"channel":"chat"}`,
			&protocol.Unsubscribe{ID: 3, Channel: "chat"}},
		{"publish", `{"type":"publish","id":4,"channel":"chat","data":{"text":"hi"},"key":"k-01J9"}`,
			&protocol.Publish{ID: 4, Channel: "chat", Data: json.RawMessage(`{"text":"hi"}`), Key: "k-01J9"}},
		{"publish data null", `{"type":"publish","channel":"chat","data":null}`,
			&protocol.Publish{Channel: "chat", Data: json.RawMessage(`null`)}},
		{"publish data untouched", `{"type":"publish","channel":"chat","data": [1, "<&>" , {"a" : 2}] }`,
			&protocol.Publish{Channel: "chat", Data: json.RawMessage(`[1, "<&>" , {"a" : 2}]`)}},
		{"publish key 64 bytes", `{"type":"publish","channel":"c","data":0,"key":"` + strings.Repeat("k", 64) + `"}`,
			&protocol.Publish{Channel: "c", Data: json.RawMessage(`0`), Key: strings.Repeat("k", 64)}},
		{"ping", `{"type":"ping","id":5}`, &protocol.Ping{ID: 5}},
		{"ping id null", `{"type":"ping","id":null}`, &protocol.Ping{}},
		{"ping max id", `{"type":"ping","id":18446744073709551615}`, &protocol.Ping{ID: 18446744073709551615}},
		{"refresh", `{"type":"refresh","id":6,"token":"new"}`, &protocol.Refresh{ID: 6, Token: "new"}},
		{"welcome", `{"type":"welcome","id":1,"session":"s_8f3k2","server":"herald/0.1.0","ping_interval_ms":25000,"pong_timeout_ms":15000,"max_message_bytes":65536,"user":"alice"}`,
			&protocol.Welcome{ID: 1, Session: "s_8f3k2", Server: "herald/0.1.0", PingIntervalMS: 25000,
				PongTimeoutMS: 15000, MaxMessageBytes: 65536, User: "alice"}},
		{"welcome with rate limit", `{"type":"welcome","session":"s","server":"herald/0.1.0","ping_interval_ms":25000,"pong_timeout_ms":15000,"max_message_bytes":65536,"rate":50,"burst":100}`,
			&protocol.Welcome{Session: "s", Server: "herald/0.1.0", PingIntervalMS: 25000,
				PongTimeoutMS: 15000, MaxMessageBytes: 65536, Rate: 50, Burst: 100}},
		{"subscribed", `{"type":"subscribed","id":2,"channel":"chat","epoch":"e7Kq","offset":44}`,
			&protocol.Subscribed{ID: 2, Channel: "chat", Epoch: "e7Kq", Offset: 44}},
		{"subscribed recovered", `{"type":"subscribed","id":2,"channel":"chat","epoch":"e7Kq","offset":44,"recovered":true}`,
			&protocol.Subscribed{ID: 2, Channel: "chat", Epoch: "e7Kq", Offset: 44, Recovered: ptr(true)}},
		{"subscribed not recovered", `{"type":"subscribed","channel":"chat","epoch":"e","offset":0,"recovered":false}`,
			&protocol.Subscribed{Channel: "chat", Epoch: "e", Recovered: ptr(false)}},
		{"unsubscribed", `{"type":"unsubscribed","id":3,"channel":"chat"}`,
			&protocol.Unsubscribed{ID: 3, Channel: "chat"}},
		{"published", `{"type":"published","id":4,"channel":"chat","offset":45}`,
			&protocol.Published{ID: 4, Channel: "chat", Offset: 45}},
		{"pong", `{"type":"pong","id":5}`, &protocol.Pong{ID: 5}},
		{"refreshed", `{"type":"refreshed","id":6,"expires_at":1767225600}`,
			&protocol.Refreshed{ID: 6, ExpiresAt: 1767225600}},
		{"message", `{"type":"message","channel":"chat","offset":45,"data":{"text":"hi"}}`,
			&protocol.Message{Channel: "chat", Offset: 45, Data: json.RawMessage(`{"text":"hi"}`)}},
		{"message data null", `{"type":"message","channel":"chat","offset":45,"data":null}`,
			&protocol.Message{Channel: "chat", Offset: 45, Data: json.RawMessage(`null`)}},
		{"error", `{"type":"error","id":4,"code":"forbidden","message":"publish to chat is not allowed"}`,
			&protocol.Error{ID: 4, Code: protocol.CodeForbidden, Message: "publish to chat is not allowed"}},
		{"error rate limited", `{"type":"error","code":"rate_limited","message":"slow down","retry_after_ms":250}`,
			&protocol.Error{Code: protocol.CodeRateLimited, Message: "slow down", RetryAfterMS: 250}},
		{"unknown fields ignored", `{"type":"subscribe","id":7,"channel":"chat","future":{"x":[1,2]},"v":2}`,
			&protocol.Subscribe{ID: 7, Channel: "chat"}},
		{"type not first", `{"channel":"chat","id":8,"type":"unsubscribe"}`,
			&protocol.Unsubscribe{ID: 8, Channel: "chat"}},
		{"surrounding whitespace", " \n\t{ \"type\" : \"ping\" } \r\n", &protocol.Ping{}},
		{"escaped channel", `{"type":"subscribe","channel":"ch\u0061t"}`, &protocol.Subscribe{Channel: "chat"}},
		{"field names exact", `{"type":"subscribe","channel":"chat","Channel":"a b","SINCE":{"epoch":"e","offset":1}}`,
			&protocol.Subscribe{Channel: "chat"}},
		{"optional field name exact", `{"type":"publish","channel":"c","data":1,"Key":"k"}`,
			&protocol.Publish{Channel: "c", Data: json.RawMessage(`1`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := protocol.Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode(%s) error: %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode(%s)\n got %#v\nwant %#v", tt.in, got, tt.want)
			}
			if got.Type() != tt.want.Type() {
				t.Errorf("Type() = %q, want %q", got.Type(), tt.want.Type())
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	long := strings.Repeat("a", 256)
	tests := []struct {
		name string
		in   string
		code protocol.Code
		id   uint64
	}{
		// Not JSON.
		{"empty", ``, protocol.CodeBadRequest, 0},
		{"garbage", `hello`, protocol.CodeBadRequest, 0},
		{"truncated", `{"type":"ping","id":1`, protocol.CodeBadRequest, 0},
		{"trailing garbage", `{"type":"ping","id":1} x`, protocol.CodeBadRequest, 0},
		{"two objects", `{"type":"ping"}{"type":"ping"}`, protocol.CodeBadRequest, 0},
		{"single quotes", `{'type':'ping'}`, protocol.CodeBadRequest, 0},
		// Not an object.
		{"array", `[{"type":"ping","id":1}]`, protocol.CodeBadRequest, 0},
		{"string", `"ping"`, protocol.CodeBadRequest, 0},
		{"number", `42`, protocol.CodeBadRequest, 0},
		{"null", `null`, protocol.CodeBadRequest, 0},
		{"true", `true`, protocol.CodeBadRequest, 0},
		// The type field.
		{"missing type", `{"id":1,"channel":"chat"}`, protocol.CodeBadRequest, 1},
		{"empty object", `{}`, protocol.CodeBadRequest, 0},
		{"type number", `{"type":1,"id":2}`, protocol.CodeBadRequest, 2},
		{"type null", `{"type":null,"id":2}`, protocol.CodeBadRequest, 2},
		{"type object", `{"type":{"name":"ping"},"id":2}`, protocol.CodeBadRequest, 2},
		{"type array", `{"type":["ping"],"id":2}`, protocol.CodeBadRequest, 2},
		{"unknown type", `{"type":"shout","id":9}`, protocol.CodeUnknownType, 9},
		{"unknown type no id", `{"type":"shout"}`, protocol.CodeUnknownType, 0},
		{"type wrong case", `{"type":"Ping","id":3}`, protocol.CodeUnknownType, 3},
		{"type empty", `{"type":"","id":3}`, protocol.CodeUnknownType, 3},
		// Bad channels keep the id.
		{"channel empty", `{"type":"subscribe","id":10,"channel":""}`, protocol.CodeInvalidChannel, 10},
		{"channel 256 bytes", `{"type":"subscribe","id":10,"channel":"` + long + `"}`, protocol.CodeInvalidChannel, 10},
		{"channel space", `{"type":"subscribe","id":10,"channel":"chat room"}`, protocol.CodeInvalidChannel, 10},
		{"channel hash", `{"type":"unsubscribe","id":11,"channel":"#chat"}`, protocol.CodeInvalidChannel, 11},
		{"channel non-ASCII", `{"type":"publish","id":12,"channel":"café","data":1}`, protocol.CodeInvalidChannel, 12},
		{"channel escaped NUL", `{"type":"subscribe","id":13,"channel":"a\u0000b"}`, protocol.CodeInvalidChannel, 13},
		{"channel star", `{"type":"subscribe","channel":"chat:*"}`, protocol.CodeInvalidChannel, 0},
		// Missing required fields keep the id.
		{"subscribe no channel", `{"type":"subscribe","id":14}`, protocol.CodeBadRequest, 14},
		{"subscribe channel null", `{"type":"subscribe","id":14,"channel":null}`, protocol.CodeBadRequest, 14},
		{"subscribe channel wrong case", `{"type":"subscribe","id":14,"Channel":"chat"}`, protocol.CodeBadRequest, 14},
		{"unsubscribe no channel", `{"type":"unsubscribe","id":15}`, protocol.CodeBadRequest, 15},
		{"publish no channel", `{"type":"publish","id":16,"data":1}`, protocol.CodeBadRequest, 16},
		{"publish no data", `{"type":"publish","id":16,"channel":"chat"}`, protocol.CodeBadRequest, 16},
		{"hello no token", `{"type":"hello","id":1}`, protocol.CodeBadRequest, 1},
		{"hello empty token", `{"type":"hello","id":1,"token":""}`, protocol.CodeBadRequest, 1},
		{"refresh no token", `{"type":"refresh","id":17}`, protocol.CodeBadRequest, 17},
		{"refresh empty token", `{"type":"refresh","id":17,"token":""}`, protocol.CodeBadRequest, 17},
		{"welcome no session", `{"type":"welcome"}`, protocol.CodeBadRequest, 0},
		{"subscribed no offset", `{"type":"subscribed","id":2,"channel":"c","epoch":"e"}`, protocol.CodeBadRequest, 2},
		{"subscribed no epoch", `{"type":"subscribed","id":2,"channel":"c","offset":1}`, protocol.CodeBadRequest, 2},
		{"published no offset", `{"type":"published","id":4,"channel":"c"}`, protocol.CodeBadRequest, 4},
		{"message no data", `{"type":"message","channel":"c","offset":1}`, protocol.CodeBadRequest, 0},
		{"error no code", `{"type":"error","id":4,"message":"x"}`, protocol.CodeBadRequest, 4},
		// Ill-typed fields.
		{"channel number", `{"type":"subscribe","id":18,"channel":5}`, protocol.CodeBadRequest, 18},
		{"channel array", `{"type":"publish","id":18,"channel":["chat"],"data":1}`, protocol.CodeBadRequest, 18},
		{"token number", `{"type":"hello","id":1,"token":123}`, protocol.CodeBadRequest, 1},
		{"key number", `{"type":"publish","id":19,"channel":"c","data":1,"key":7}`, protocol.CodeBadRequest, 19},
		{"offset negative", `{"type":"published","id":4,"channel":"c","offset":-1}`, protocol.CodeBadRequest, 4},
		{"offset string", `{"type":"message","channel":"c","offset":"1","data":1}`, protocol.CodeBadRequest, 0},
		{"recovered string", `{"type":"subscribed","channel":"c","epoch":"e","offset":1,"recovered":"yes"}`, protocol.CodeBadRequest, 0},
		{"ping interval fractional", `{"type":"welcome","session":"s","ping_interval_ms":1.5}`, protocol.CodeBadRequest, 0},
		// A bad id is never echoed.
		{"id negative", `{"type":"ping","id":-1}`, protocol.CodeBadRequest, 0},
		{"id zero", `{"type":"ping","id":0}`, protocol.CodeBadRequest, 0},
		{"id fractional", `{"type":"ping","id":1.5}`, protocol.CodeBadRequest, 0},
		{"id integral float", `{"type":"ping","id":1.0}`, protocol.CodeBadRequest, 0},
		{"id exponent", `{"type":"ping","id":1e3}`, protocol.CodeBadRequest, 0},
		{"id string", `{"type":"ping","id":"5"}`, protocol.CodeBadRequest, 0},
		{"id bool", `{"type":"ping","id":true}`, protocol.CodeBadRequest, 0},
		{"id overflow", `{"type":"ping","id":18446744073709551616}`, protocol.CodeBadRequest, 0},
		{"id bad with unknown type", `{"type":"shout","id":-3}`, protocol.CodeBadRequest, 0},
		{"id bad with bad channel", `{"type":"subscribe","id":"x","channel":"a b"}`, protocol.CodeBadRequest, 0},
		// Key longer than 64 bytes.
		{"key 65 bytes", `{"type":"publish","id":20,"channel":"c","data":1,"key":"` + strings.Repeat("k", 65) + `"}`,
			protocol.CodeBadRequest, 20},
		{"key 33 two-byte runes", `{"type":"publish","id":20,"channel":"c","data":1,"key":"` + strings.Repeat("é", 33) + `"}`,
			protocol.CodeBadRequest, 20},
		// Since with wrong types.
		{"since string", `{"type":"subscribe","id":21,"channel":"c","since":"e7Kq:41"}`, protocol.CodeBadRequest, 21},
		{"since number", `{"type":"subscribe","id":21,"channel":"c","since":41}`, protocol.CodeBadRequest, 21},
		{"since array", `{"type":"subscribe","id":21,"channel":"c","since":["e",1]}`, protocol.CodeBadRequest, 21},
		{"since epoch number", `{"type":"subscribe","id":21,"channel":"c","since":{"epoch":7,"offset":1}}`, protocol.CodeBadRequest, 21},
		{"since offset string", `{"type":"subscribe","id":21,"channel":"c","since":{"epoch":"e","offset":"1"}}`, protocol.CodeBadRequest, 21},
		{"since offset negative", `{"type":"subscribe","id":21,"channel":"c","since":{"epoch":"e","offset":-1}}`, protocol.CodeBadRequest, 21},
		{"since offset fractional", `{"type":"subscribe","id":21,"channel":"c","since":{"epoch":"e","offset":1.5}}`, protocol.CodeBadRequest, 21},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := protocol.Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode(%s) = %#v, want error %s", tt.in, f, tt.code)
			}
			if f != nil {
				t.Errorf("Decode(%s) returned frame %#v with its error", tt.in, f)
			}
			var pe *protocol.Error
			if !errors.As(err, &pe) {
				t.Fatalf("Decode(%s) error %T %v is not a *protocol.Error", tt.in, err, err)
			}
			if pe.Code != tt.code || pe.ID != tt.id {
				t.Errorf("Decode(%s) = code %s id %d, want code %s id %d (%v)", tt.in, pe.Code, pe.ID, tt.code, tt.id, err)
			}
			if pe.Message == "" {
				t.Errorf("Decode(%s) error has no message", tt.in)
			}
		})
	}
}

// TestDecodeErrorMessages names the field whose value has the wrong type,
// nested fields by their path.
func TestDecodeErrorMessages(t *testing.T) {
	for in, want := range map[string]string{
		`{"type":"subscribe","channel":5}`:                                      `subscribe: field "channel" has the wrong type (got a JSON number)`,
		`{"type":"subscribe","channel":"c","since":{"epoch":"e","offset":"1"}}`: `subscribe: field "since.offset" has the wrong type (got a JSON string)`,
		`{"type":"publish","channel":"c","data":1,"key":[]}`:                    `publish: field "key" has the wrong type (got a JSON array)`,
	} {
		_, err := protocol.Decode([]byte(in))
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Message != want {
			t.Errorf("Decode(%s) = %v, want message %q", in, err, want)
		}
	}
}

// allFrames holds one frame of every type, with every field set.
func allFrames() []protocol.Frame {
	return []protocol.Frame{
		&protocol.Hello{ID: 1, Token: "tok", Client: "herald-go/0.1"},
		&protocol.Subscribe{ID: 2, Channel: "chat:lobby", Since: &protocol.StreamPosition{Epoch: "e7Kq", Offset: 41}},
		&protocol.Unsubscribe{ID: 3, Channel: "chat"},
		&protocol.Publish{ID: 4, Channel: "chat", Data: json.RawMessage(`{"text": "<b>hi</b> & bye"}`), Key: "k-01J9"},
		&protocol.Ping{ID: 5},
		&protocol.Refresh{ID: 6, Token: "new"},
		&protocol.Welcome{ID: 1, Session: "s_8f3k2", Server: "herald/0.1.0", PingIntervalMS: 25000,
			PongTimeoutMS: 15000, MaxMessageBytes: 65536, User: "alice", Rate: 2.5, Burst: 10},
		&protocol.Subscribed{ID: 2, Channel: "chat", Epoch: "e7Kq", Offset: 44, Recovered: ptr(true)},
		&protocol.Unsubscribed{ID: 3, Channel: "chat"},
		&protocol.Published{ID: 4, Channel: "chat", Offset: 45},
		&protocol.Pong{ID: 5},
		&protocol.Refreshed{ID: 6, ExpiresAt: 1767225600},
		&protocol.Message{Channel: "chat", Offset: 45, Data: json.RawMessage(`[1, 2.50, "x"]`)},
		&protocol.Error{ID: 7, Code: protocol.CodeRateLimited, Message: "slow down", RetryAfterMS: 250},
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	frames := append(allFrames(),
		&protocol.Subscribe{Channel: "c"},
		&protocol.Ping{},
		&protocol.Publish{Channel: "c", Data: json.RawMessage(`null`)},
		&protocol.Subscribed{Channel: "c", Epoch: "e", Recovered: ptr(false)},
		&protocol.Welcome{Session: "s"},
		&protocol.Refreshed{},
	)
	for _, f := range frames {
		t.Run(f.Type(), func(t *testing.T) {
			b, err := protocol.Encode(f)
			if err != nil {
				t.Fatalf("Encode(%#v): %v", f, err)
			}
			prefix := `{"type":"` + f.Type() + `"`
			if !bytes.HasPrefix(b, []byte(prefix)) {
				t.Errorf("Encode = %s, want it to start with %s", b, prefix)
			}
			if !json.Valid(b) {
				t.Fatalf("Encode = %s, not valid JSON", b)
			}
			got, err := protocol.Decode(b)
			if err != nil {
				t.Fatalf("Decode(Encode) of %s: %v", b, err)
			}
			if !reflect.DeepEqual(got, f) {
				t.Errorf("round trip through %s\n got %#v\nwant %#v", b, got, f)
			}
		})
	}
}

func TestEncodeExact(t *testing.T) {
	tests := []struct {
		f    protocol.Frame
		want string
	}{
		{&protocol.Ping{}, `{"type":"ping"}`},
		{&protocol.Pong{ID: 5}, `{"type":"pong","id":5}`},
		{&protocol.Subscribed{Channel: "chat", Epoch: "e"},
			`{"type":"subscribed","channel":"chat","epoch":"e","offset":0}`},
		{&protocol.Subscribed{Channel: "chat", Epoch: "e", Offset: 3, Recovered: ptr(false)},
			`{"type":"subscribed","channel":"chat","epoch":"e","offset":3,"recovered":false}`},
		{&protocol.Published{ID: 1, Channel: "c"}, `{"type":"published","id":1,"channel":"c","offset":0}`},
		{&protocol.Publish{ID: 4, Channel: "chat", Data: json.RawMessage(`{"a": "<&>"}`), Key: "k"},
			`{"type":"publish","id":4,"channel":"chat","data":{"a": "<&>"},"key":"k"}`},
		{&protocol.Publish{Channel: "chat"}, `{"type":"publish","channel":"chat","data":null}`},
		{&protocol.Message{Channel: "chat", Offset: 45, Data: json.RawMessage(` "x" `)},
			`{"type":"message","channel":"chat","offset":45,"data": "x" }`},
		{&protocol.Message{Channel: "c"}, `{"type":"message","channel":"c","offset":0,"data":null}`},
		{&protocol.Error{Code: protocol.CodeInternal, Message: ""}, `{"type":"error","code":"internal","message":""}`},
	}
	for _, tt := range tests {
		got, err := protocol.Encode(tt.f)
		if err != nil {
			t.Errorf("Encode(%#v): %v", tt.f, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("Encode(%#v)\n got %s\nwant %s", tt.f, got, tt.want)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	for _, f := range []protocol.Frame{
		nil,
		(*protocol.Ping)(nil),
		(*protocol.Publish)(nil),
		(*protocol.Message)(nil),
		&protocol.Publish{Channel: "c", Data: json.RawMessage(`{"a":`)},
		&protocol.Message{Channel: "c", Data: json.RawMessage(`nope`)},
	} {
		if b, err := protocol.Encode(f); err == nil {
			t.Errorf("Encode(%#v) = %s, want an error", f, b)
		}
	}
}

func TestAppendMessage(t *testing.T) {
	tests := []struct {
		channel string
		offset  uint64
		ts      int64
		from    *protocol.From
		data    string
	}{
		{"chat", 45, 1767225600123, &protocol.From{Client: "s_8KQ2", User: "alice"}, `{"text":"hi"}`},
		{"a:b/c@d=e.f-g_h", 0, 0, nil, `null`},
		{"c", 18446744073709551615, 1, &protocol.From{Client: "s_1"}, ` [ 1 , "<&>" ] `},
		{"c", 1, -1, &protocol.From{Client: "s_\"", User: "\\\x00\x1f\u2028é\xff"}, `"\u00e9"`},
	}
	for _, tt := range tests {
		prefix := []byte("prefix")
		b := protocol.AppendMessage(prefix, tt.channel, tt.offset, tt.ts, tt.from, []byte(tt.data))
		if !bytes.HasPrefix(b, []byte("prefix")) {
			t.Fatalf("AppendMessage dropped dst: %s", b)
		}
		b = b[len("prefix"):]
		if !json.Valid(b) {
			t.Fatalf("AppendMessage = %s, not valid JSON", b)
		}
		f, err := protocol.Decode(b)
		if err != nil {
			t.Fatalf("Decode(%s): %v", b, err)
		}
		want := &protocol.Message{Channel: tt.channel, Offset: tt.offset, TS: tt.ts, From: tt.from, Data: json.RawMessage(strings.TrimSpace(tt.data))}
		if tt.from != nil {
			// Invalid UTF-8 is written as U+FFFD, as encoding/json does.
			want.From = &protocol.From{Client: strings.ToValidUTF8(tt.from.Client, "\uFFFD"), User: strings.ToValidUTF8(tt.from.User, "\uFFFD")}
		}
		if !reflect.DeepEqual(f, want) {
			t.Errorf("Decode(AppendMessage) = %#v, want %#v", f, want)
		}
		enc, err := protocol.Encode(want)
		if err != nil {
			t.Fatal(err)
		}
		if again := protocol.AppendMessage(nil, tt.channel, tt.offset, tt.ts, want.From, want.Data); !bytes.Equal(again, enc) {
			t.Errorf("AppendMessage = %s, Encode = %s", again, enc)
		}
	}
}

func TestAppendMessageEmptyData(t *testing.T) {
	b := protocol.AppendMessage(nil, "c", 1, 0, nil, nil)
	if want := `{"type":"message","channel":"c","offset":1,"data":null}`; string(b) != want {
		t.Errorf("AppendMessage with no data = %s, want %s", b, want)
	}
}

func TestAppendMessageAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	data := []byte(`{"text":"hi"}`)
	from := &protocol.From{Client: "s_8KQ2", User: "alice \"a\""}
	allocs := testing.AllocsPerRun(100, func() {
		buf = protocol.AppendMessage(buf[:0], "chat:lobby", 12345, 1767225600123, from, data)
	})
	if allocs != 0 {
		t.Errorf("AppendMessage allocates %v times per call with enough capacity", allocs)
	}
}

func TestValidateChannel(t *testing.T) {
	const allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:@/="
	valid := []string{
		allowed,
		"a", "chat", "chat:lobby", "user@example.com", "a/b/c", "x=1", "_", "-", ".", ":", "::",
		strings.Repeat("z", protocol.MaxChannelBytes),
	}
	for _, name := range valid {
		if err := protocol.ValidateChannel(name); err != nil {
			t.Errorf("ValidateChannel(%q) = %v, want nil", name, err)
		}
	}
	invalid := []string{
		"",
		strings.Repeat("z", protocol.MaxChannelBytes+1),
		"chat room", "#chat", "chat*", "a\tb", "a\nb", "a\x00b", "café", "日本", "\xff",
		"a,b", "a;b", "a?b", "a+b", "a%20b", `a"b`, `a\b`, "a'b", "a!b", "a~b", "a|b", "(a)", "[a]", "{a}", "<a>",
	}
	for _, name := range invalid {
		if err := protocol.ValidateChannel(name); err == nil {
			t.Errorf("ValidateChannel(%q) = nil, want an error", name)
		}
	}
	// Every byte outside the allowed set is rejected on its own.
	for c := 0; c < 256; c++ {
		name := "a" + string([]byte{byte(c)})
		err := protocol.ValidateChannel(name)
		if ok := strings.IndexByte(allowed, byte(c)) >= 0; ok != (err == nil) {
			t.Errorf("ValidateChannel(%q) = %v, allowed = %v", name, err, ok)
		}
	}
}

func TestNamespace(t *testing.T) {
	tests := map[string]string{
		"chat:lobby":    "chat",
		"chat":          "",
		"chat:a:b":      "chat",
		":lobby":        "",
		"chat:":         "chat",
		"":              "",
		"user@x/y:z":    "user@x/y",
		"news.eu:today": "news.eu",
	}
	for channel, want := range tests {
		if got := protocol.Namespace(channel); got != want {
			t.Errorf("Namespace(%q) = %q, want %q", channel, got, want)
		}
	}
}

func TestCloseCodeRetryable(t *testing.T) {
	tests := []struct {
		code protocol.CloseCode
		want bool
	}{
		{1000, true}, {1001, true}, {1006, true}, {1007, true}, {1009, true},
		{1011, true}, {1013, true}, {4000, true}, {4001, true}, {4008, true},
		{4029, true}, {4499, true},
		{4403, false}, {4500, false}, {4501, false}, {4998, false}, {4999, false},
	}
	for _, tt := range tests {
		if got := tt.code.Retryable(); got != tt.want {
			t.Errorf("CloseCode(%d).Retryable() = %v, want %v", tt.code, got, tt.want)
		}
	}
	named := []protocol.CloseCode{
		protocol.CloseNormal, protocol.CloseGoingAway, protocol.CloseAbnormal, protocol.CloseInvalidPayload,
		protocol.CloseMessageTooBig, protocol.CloseInternal, protocol.CloseTryAgainLater,
		protocol.CloseUnauthorized, protocol.CloseSlowConsumer, protocol.CloseTooManyErrors,
	}
	for _, c := range named {
		if !c.Retryable() {
			t.Errorf("%d (%s) is terminal, want retryable", c, c)
		}
	}
	if protocol.CloseForbidden.Retryable() {
		t.Errorf("CloseForbidden is retryable, want terminal")
	}
}

func TestCloseCodeString(t *testing.T) {
	tests := map[protocol.CloseCode]string{
		1000: "normal close", 1001: "server shutting down", 1006: "connection lost",
		4001: "unauthorized", 4008: "slow consumer", 4029: "too many bad requests",
		4403: "forbidden", 4500: "terminal application close", 4100: "application close",
		1002: "close",
	}
	for c, want := range tests {
		if got := c.String(); got != want {
			t.Errorf("CloseCode(%d).String() = %q, want %q", c, got, want)
		}
	}
}

func TestCodeHTTPStatus(t *testing.T) {
	tests := map[protocol.Code]int{
		protocol.CodeBadRequest: 400, protocol.CodeUnknownType: 400, protocol.CodeInvalidChannel: 400,
		protocol.CodeUnauthorized: 401, protocol.CodeForbidden: 403, protocol.CodeNotSubscribed: 409,
		protocol.CodeLimitExceeded: 429, protocol.CodeRateLimited: 429, protocol.CodeUnavailable: 503,
		protocol.CodeInternal: 500, "no_such_code": 500,
	}
	for c, want := range tests {
		if got := c.HTTPStatus(); got != want {
			t.Errorf("Code(%q).HTTPStatus() = %d, want %d", c, got, want)
		}
	}
}

// Every frame a client sends is a Request and reports its id; no other is.
func TestRequests(t *testing.T) {
	requests := map[string]bool{
		protocol.TypeHello: true, protocol.TypeSubscribe: true, protocol.TypeUnsubscribe: true,
		protocol.TypePublish: true, protocol.TypePing: true, protocol.TypeRefresh: true,
	}
	for _, f := range allFrames() {
		r, ok := f.(protocol.Request)
		if ok != requests[f.Type()] {
			t.Errorf("%T implements Request = %v, want %v", f, ok, !ok)
		}
		if ok && r.RequestID() == 0 {
			t.Errorf("%T.RequestID() = 0, want the frame's id", f)
		}
	}
}

func TestErrorIsError(t *testing.T) {
	var err error = &protocol.Error{Code: protocol.CodeForbidden, Message: "no"}
	if got, want := err.Error(), "forbidden: no"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestEncodeErrorPrefix: Encode's errors, meant for Go callers, start with
// the package's prefix.
func TestEncodeErrorPrefix(t *testing.T) {
	for _, f := range []protocol.Frame{nil, &protocol.Message{Channel: "c", Data: json.RawMessage(`nope`)}} {
		if _, err := protocol.Encode(f); err == nil || !strings.HasPrefix(err.Error(), "herald: protocol: ") {
			t.Errorf("Encode(%#v) = %v, want an error starting with %q", f, err, "herald: protocol: ")
		}
	}
}
