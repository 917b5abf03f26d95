package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// frameSpec says how to make an empty frame of a type and which fields it
// must carry.
type frameSpec struct {
	new      func() Frame
	required []string
}

// wireField is a field of a frame struct, by its exact name on the wire.
type wireField struct {
	name  string
	index int
	raw   bool // a json.RawMessage, taken as it is
}

// frameFields holds each frame type's fields.
var frameFields = func() map[string][]wireField {
	m := make(map[string][]wireField, len(specs))
	for t, spec := range specs {
		m[t] = wireFields(reflect.TypeOf(spec.new()).Elem())
	}
	return m
}()

func wireFields(t reflect.Type) []wireField {
	var fields []wireField
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if !sf.IsExported() || name == "-" || name == "" {
			continue
		}
		fields = append(fields, wireField{name: name, index: i, raw: sf.Type == reflect.TypeFor[json.RawMessage]()})
	}
	return fields
}

var specs = map[string]frameSpec{
	TypeHello:        {func() Frame { return new(Hello) }, []string{"token"}},
	TypeSubscribe:    {func() Frame { return new(Subscribe) }, []string{"channel"}},
	TypeUnsubscribe:  {func() Frame { return new(Unsubscribe) }, []string{"channel"}},
	TypePublish:      {func() Frame { return new(Publish) }, []string{"channel", "data"}},
	TypePing:         {func() Frame { return new(Ping) }, nil},
	TypeRefresh:      {func() Frame { return new(Refresh) }, []string{"token"}},
	TypeWelcome:      {func() Frame { return new(Welcome) }, []string{"session"}},
	TypeSubscribed:   {func() Frame { return new(Subscribed) }, []string{"channel", "epoch", "offset"}},
	TypeUnsubscribed: {func() Frame { return new(Unsubscribed) }, []string{"channel"}},
	TypePublished:    {func() Frame { return new(Published) }, []string{"channel", "offset"}},
	TypePong:         {func() Frame { return new(Pong) }, nil},
	TypeRefreshed:    {func() Frame { return new(Refreshed) }, nil},
	TypeMessage:      {func() Frame { return new(Message) }, []string{"channel", "offset", "data"}},
	TypeError:        {func() Frame { return new(Error) }, []string{"code"}},
	TypeRPC:          {func() Frame { return new(RPC) }, []string{"method"}},
	TypeResult:       {func() Frame { return new(Result) }, []string{"data"}},
	TypePresence:     {func() Frame { return new(Presence) }, []string{"channel"}},
	TypePresent:      {func() Frame { return new(Present) }, []string{"channel", "clients", "users"}},
	TypeJoin:         {func() Frame { return new(Join) }, []string{"channel", "member"}},
	TypeLeave:        {func() Frame { return new(Leave) }, []string{"channel", "member"}},
	TypeHistory:      {func() Frame { return new(History) }, []string{"channel"}},
	TypePage:         {func() Frame { return new(Page) }, []string{"channel", "epoch", "offset", "messages"}},
}

// Decode parses and validates one frame of either direction. On failure the
// error is an *Error carrying the code PROTOCOL.md names (bad_request,
// unknown_type or invalid_channel) and the frame's id when it had a valid
// one. Field names are exact; unknown fields are ignored.
func Decode(data []byte) (Frame, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		if json.Valid(data) {
			return nil, badRequest(0, "frame must be a JSON object")
		}
		return nil, badRequest(0, "frame is not valid JSON")
	}
	if fields == nil { // the literal null
		return nil, badRequest(0, "frame must be a JSON object")
	}
	id, err := decodeID(fields["id"])
	if err != nil {
		return nil, err
	}
	typ, ok := fields["type"]
	if !ok {
		return nil, badRequest(id, `missing field "type"`)
	}
	var t string
	if err := json.Unmarshal(typ, &t); err != nil || isNull(typ) {
		return nil, badRequest(id, `field "type" must be a string`)
	}
	spec, ok := specs[t]
	if !ok {
		return nil, &Error{ID: id, Code: CodeUnknownType, Message: fmt.Sprintf("unknown frame type %q", t)}
	}
	for _, name := range spec.required {
		// data is any JSON value, null included; other fields may not be null.
		if v, ok := fields[name]; !ok || (name != "data" && isNull(v)) {
			return nil, badRequest(id, fmt.Sprintf("%s: missing field %q", t, name))
		}
	}
	f := spec.new()
	if err := fill(f, frameFields[t], fields); err != nil {
		return nil, badRequest(id, t+": "+err.Error())
	}
	if err := validate(f); err != nil {
		err.ID = id
		return nil, err
	}
	return f, nil
}

// decodeID reads an optional id: absent or null is 0, anything but a
// positive integer is bad_request.
func decodeID(raw json.RawMessage) (uint64, error) {
	if raw == nil || isNull(raw) {
		return 0, nil
	}
	id, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil || id == 0 {
		return 0, badRequest(0, `field "id" must be a positive integer`)
	}
	return id, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(raw, []byte("null")) }

// fill sets the fields of the frame f from the raw values of the frame's
// top-level fields, each decoded on its own. The raw values are f's from then
// on.
func fill(f Frame, fields []wireField, values map[string]json.RawMessage) error {
	v := reflect.ValueOf(f).Elem()
	for _, wf := range fields {
		raw, ok := values[wf.name]
		if !ok {
			continue
		}
		field := v.Field(wf.index)
		if wf.raw {
			field.SetBytes(raw)
			continue
		}
		if err := json.Unmarshal(raw, field.Addr().Interface()); err != nil {
			return fieldError(wf.name, err)
		}
	}
	return nil
}

func fieldError(name string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			name += "." + te.Field
		}
		return fmt.Errorf("field %q has the wrong type (got a JSON %s)", name, te.Value)
	}
	return fmt.Errorf("field %q: %v", name, err)
}

// validate checks the rules a frame's fields must keep beyond their types.
func validate(f Frame) *Error {
	switch f := f.(type) {
	case *Subscribe:
		if e := f.checkLast(); e != nil {
			return e
		}
		return checkChannel(f.Channel)
	case *History:
		return f.check()
	case *Unsubscribe:
		return checkChannel(f.Channel)
	case *Presence:
		return checkChannel(f.Channel)
	case *Publish:
		if len(f.Key) > MaxKeyBytes {
			return badRequest(0, fmt.Sprintf("publish: key longer than %d bytes", MaxKeyBytes))
		}
		return checkChannel(f.Channel)
	case *Hello:
		if f.Token == "" {
			return badRequest(0, "hello: empty token")
		}
	case *Refresh:
		if f.Token == "" {
			return badRequest(0, "refresh: empty token")
		}
	case *RPC:
		return f.validate()
	}
	return nil
}

func checkChannel(name string) *Error {
	if err := ValidateChannel(name); err != nil {
		return &Error{Code: CodeInvalidChannel, Message: err.Error()}
	}
	return nil
}

func badRequest(id uint64, msg string) *Error {
	return &Error{ID: id, Code: CodeBadRequest, Message: msg}
}

// Encode returns the JSON text of f with its "type" field first. The data of
// a Publish or Message is copied byte for byte, as Decode left it; a nil data
// is written as null.
func Encode(f Frame) ([]byte, error) {
	switch f := f.(type) {
	case nil:
		return nil, errors.New("herald: protocol: encode: nil frame")
	case *Publish:
		if f != nil {
			return encodePublish(f)
		}
	case *Message:
		if f != nil {
			return encodeMessage(f)
		}
	case *Page:
		if f != nil {
			return encodePage(f)
		}
	}
	body, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("herald: protocol: encode %s: %w", f.Type(), err)
	}
	if len(body) < 2 || body[0] != '{' {
		return nil, fmt.Errorf("herald: protocol: encode %s: frame is not a JSON object", f.Type())
	}
	out := make([]byte, 0, len(body)+len(f.Type())+12)
	out = append(out, `{"type":"`...)
	out = append(out, f.Type()...)
	out = append(out, '"')
	if len(body) > 2 {
		out = append(out, ',')
	}
	return append(out, body[1:]...), nil
}

// encodePublish writes the fields in the order of the Publish struct.
func encodePublish(f *Publish) ([]byte, error) {
	out := []byte(`{"type":"publish"`)
	if f.ID != 0 {
		out = append(out, `,"id":`...)
		out = strconv.AppendUint(out, f.ID, 10)
	}
	out = append(out, `,"channel":`...)
	out = appendString(out, f.Channel)
	out = append(out, `,"data":`...)
	out, err := appendData(out, TypePublish, f.Data)
	if err != nil {
		return nil, err
	}
	if f.Key != "" {
		out = append(out, `,"key":`...)
		out = appendString(out, f.Key)
	}
	return append(out, '}'), nil
}

// encodeMessage writes the fields in the order of the Message struct.
func encodeMessage(f *Message) ([]byte, error) {
	if len(f.Data) > 0 && !json.Valid(f.Data) {
		return nil, fmt.Errorf("herald: protocol: encode %s: data is not valid JSON", TypeMessage)
	}
	out := []byte(`{"type":"message","channel":`)
	out = appendString(out, f.Channel)
	out = append(out, `,"offset":`...)
	return appendMeta(out, f.Offset, f.TS, f.From, f.Data), nil
}

// appendData appends data untouched (json.Marshal would compact it and
// escape <, > and &), or null when it is empty.
func appendData(dst []byte, typ string, data json.RawMessage) ([]byte, error) {
	if len(data) == 0 {
		return append(dst, "null"...), nil
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("herald: protocol: encode %s: data is not valid JSON", typ)
	}
	return append(dst, data...), nil
}

func appendString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}

// AppendMessage appends the JSON text of a message frame to dst. It is the
// allocation-free path used by fan-out; channel must be a valid channel name
// (which needs no escaping) and data valid JSON; empty data is written as
// null, a zero ts and a nil from are left out, as Encode does.
func AppendMessage(dst []byte, channel string, offset uint64, ts int64, from *From, data []byte) []byte {
	dst = append(dst, `{"type":"message","channel":"`...)
	dst = append(dst, channel...)
	dst = append(dst, `","offset":`...)
	return appendMeta(dst, offset, ts, from, data)
}
