// Package heraldtest is test support for Herald's test suites: a raw
// herald.v1 client at WebSocket frame level, so a test sees exactly what a
// server sends and can misbehave on purpose.
//
// It does not import the herald package, so herald's own in-package tests
// can use it. A Herald server that a test can kill and restart is in the
// subpackage testnode, which does import herald.
//
// Nothing here belongs in a program: methods that take a testing.TB fail the
// test.
package heraldtest

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// Timeout bounds how long Expect and the other methods that fail the test
// wait for a frame.
const Timeout = 10 * time.Second

// Frame is one herald.v1 frame, decoded loosely: fields the frame lacks are
// zero.
type Frame struct {
	Type      string          `json:"type"`
	ID        uint64          `json:"id"`
	Channel   string          `json:"channel"`
	Epoch     string          `json:"epoch"`
	Offset    uint64          `json:"offset"`
	Recovered *bool           `json:"recovered"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Data      json.RawMessage `json:"data"`
	// Raw is the frame as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// String returns the frame as the server sent it, or its fields when it was
// not read from a server.
func (f Frame) String() string {
	if f.Raw == nil {
		type plain Frame
		return fmt.Sprintf("%+v", plain(f))
	}
	return string(f.Raw)
}

// Fields returns every field of the frame as encoding/json decodes it into a
// map: numbers are float64.
func (f Frame) Fields() map[string]any {
	var m map[string]any
	//herald:vet-ignore ws-validate Raw already decoded as JSON when the frame was read
	json.Unmarshal(f.Raw, &m)
	return m
}

// CloseError is what reads return when the server sent a close frame.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("closed by the server: %d %q", e.Code, e.Reason)
}

// DialOptions configure Dial. The zero value offers herald.v1 and waits 5 s
// for the upgrade.
type DialOptions struct {
	// Header holds extra upgrade request headers.
	Header http.Header
	// TLSConfig is used for wss:// URLs; nil uses the system roots.
	TLSConfig *tls.Config
	// Protocols are the subprotocols offered; nil offers herald.v1.
	Protocols []string
	// Addr, when set, is the TCP address dialled instead of the URL's host,
	// which still names the server in the Host header.
	Addr string
	// Compression offers permessage-deflate as browsers do
	// ("permessage-deflate; client_max_window_bits").
	Compression bool
}

// Conn is a raw herald.v1 client connection. Writes may come from any
// goroutine; reads from one goroutine at a time. Methods that take a
// testing.TB must run in the test's goroutine; the others return errors and
// may run in any goroutine.
type Conn struct {
	nc  net.Conn
	r   io.Reader
	wmu sync.Mutex
	// Extensions are the extensions the server accepted in the upgrade.
	Extensions []httphead.Option
	// IgnorePings leaves the server's pings unanswered while reading, as a
	// dead peer would. By default reads answer them with a pong.
	IgnorePings bool
}

// Dial upgrades a connection to url without reading anything. A refused
// upgrade is a ws.StatusError.
func Dial(ctx context.Context, url string, o *DialOptions) (*Conn, error) {
	if o == nil {
		o = &DialOptions{}
	}
	d := ws.Dialer{Protocols: o.Protocols, Timeout: 5 * time.Second, TLSConfig: o.TLSConfig}
	if d.Protocols == nil {
		d.Protocols = []string{"herald.v1"}
	}
	if o.Header != nil {
		d.Header = ws.HandshakeHeaderHTTP(o.Header)
	}
	if o.Addr != "" {
		d.NetDial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, network, o.Addr)
		}
	}
	if o.Compression {
		d.Extensions = []httphead.Option{wsflate.Parameters{ClientMaxWindowBits: 1}.Option()}
	}
	nc, br, hs, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	c := &Conn{nc: nc, r: nc, Extensions: hs.Extensions}
	if br != nil { // the server's first frames may arrive with the upgrade
		c.r = io.MultiReader(br, nc)
	}
	return c, nil
}

// MustDial dials url, failing the test on error, and closes the connection
// when the test ends.
func MustDial(t testing.TB, url string, o *DialOptions) *Conn {
	t.Helper()
	c, err := Dial(context.Background(), url, o)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// DialWelcome dials url like MustDial and reads the welcome frame.
func DialWelcome(t testing.TB, url string, o *DialOptions) *Conn {
	t.Helper()
	c := MustDial(t, url, o)
	c.Expect(t, "welcome")
	return c
}

// Close closes the connection without a close frame.
func (c *Conn) Close() error { return c.nc.Close() }

// NetConn returns the underlying connection, for deadlines and half-written
// frames.
func (c *Conn) NetConn() net.Conn { return c.nc }

// WriteFrame sends one masked frame.
func (c *Conn) WriteFrame(op ws.OpCode, fin bool, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return ws.WriteFrame(c.nc, ws.MaskFrame(ws.NewFrame(op, fin, payload)))
}

// MustWriteFrame sends one masked frame like WriteFrame, failing the test on
// error.
func (c *Conn) MustWriteFrame(t testing.TB, op ws.OpCode, fin bool, payload []byte) {
	t.Helper()
	if err := c.WriteFrame(op, fin, payload); err != nil {
		t.Fatalf("write frame (opcode %d): %v", op, err)
	}
}

// WriteCompressed sends one masked frame with RSV1 set (a compressed
// message's first frame, under permessage-deflate) whatever payload holds;
// Deflate makes a valid one.
func (c *Conn) WriteCompressed(op ws.OpCode, fin bool, payload []byte) error {
	f := ws.NewFrame(op, fin, payload)
	f.Header.Rsv = ws.Rsv(true, false, false)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return ws.WriteFrame(c.nc, ws.MaskFrame(f))
}

// Deflate compresses p as one permessage-deflate message: raw deflate,
// flushed, without the trailing 00 00 ff ff (RFC 7692 §7.2.1).
func Deflate(p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.DefaultCompression)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// Inflate decompresses a permessage-deflate message's payload.
func Inflate(p []byte) ([]byte, error) {
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	return io.ReadAll(r)
}

// SendText sends text as one text message, whether or not it is JSON.
func (c *Conn) SendText(text string) error {
	return c.WriteFrame(ws.OpText, true, []byte(text))
}

// SendJSON sends v encoded as JSON in one text message.
func (c *Conn) SendJSON(v any) error {
	payload, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.WriteFrame(ws.OpText, true, payload)
}

// ReadFrame returns the next frame of any kind within d, unmasked and as
// sent: a compressed message's payload is not inflated (Next inflates it).
func (c *Conn) ReadFrame(d time.Duration) (ws.Header, []byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	h, err := ws.ReadHeader(c.r)
	if err != nil {
		return h, nil, err
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(c.r, payload); err != nil {
		return h, nil, err
	}
	if h.Masked {
		ws.Cipher(payload, h.Mask, 0)
	}
	return h, payload, nil
}

// Next returns the next data frame within d, decoded, answering pings on
// the way unless IgnorePings is set. A close frame is answered with the
// same code, as a well-behaved client would, and returned as a
// *CloseError.
func (c *Conn) Next(d time.Duration) (Frame, error) {
	deadline := time.Now().Add(d)
	for {
		h, payload, err := c.ReadFrame(time.Until(deadline))
		if err != nil {
			return Frame{}, err
		}
		switch h.OpCode {
		case ws.OpPing:
			if c.IgnorePings {
				continue
			}
			if err := c.WriteFrame(ws.OpPong, true, payload); err != nil {
				return Frame{}, err
			}
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(payload)
			c.WriteFrame(ws.OpClose, true, ws.NewCloseFrameBody(code, ""))
			return Frame{}, &CloseError{Code: int(code), Reason: reason}
		}
		if h.Rsv1() {
			if payload, err = Inflate(payload); err != nil {
				return Frame{}, fmt.Errorf("inflate: %w", err)
			}
		}
		return decode(payload)
	}
}

func decode(payload []byte) (Frame, error) {
	f := Frame{Raw: payload}
	if err := json.Unmarshal(payload, &f); err != nil {
		return Frame{}, fmt.Errorf("frame is not JSON: %q", payload)
	}
	return f, nil
}

// Send sends text like SendText, failing the test on error.
func (c *Conn) Send(t testing.TB, text string) {
	t.Helper()
	if err := c.SendText(text); err != nil {
		t.Fatalf("send %.100s: %v", text, err)
	}
}

// Expect reads the next data frame within Timeout and fails the test unless
// it has type typ.
func (c *Conn) Expect(t testing.TB, typ string) Frame {
	t.Helper()
	f, err := c.Next(Timeout)
	if err != nil {
		t.Fatalf("waiting for %s: %v", typ, err)
	}
	if f.Type != typ {
		t.Fatalf("got %s, want a %s frame", f, typ)
	}
	return f
}

// ExpectError reads an error frame and checks its code, its id (0: absent)
// and that it has a message.
func (c *Conn) ExpectError(t testing.TB, code string, id uint64) Frame {
	t.Helper()
	f := c.Expect(t, "error")
	if f.Code != code {
		t.Fatalf("error code %q, want %s (%s)", f.Code, code, f)
	}
	if f.ID != id {
		t.Fatalf("error id %d, want %d (%s)", f.ID, id, f)
	}
	if f.Message == "" {
		t.Fatalf("error without message: %s", f)
	}
	return f
}

// ExpectClose reads frames until a close frame arrives within d and returns
// its code, without answering it; frames before it are skipped.
func (c *Conn) ExpectClose(t testing.TB, d time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		h, payload, err := c.ReadFrame(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for close frame: %v", err)
		}
		if h.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(payload)
			return int(code)
		}
	}
}

// ExpectDropped checks that the server drops the connection within d
// without a close frame; frames before that are skipped.
func (c *Conn) ExpectDropped(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		h, _, err := c.ReadFrame(time.Until(deadline))
		var ne net.Error
		switch {
		case err == nil && h.OpCode == ws.OpClose:
			t.Fatal("got a close frame, want the connection dropped without one")
		case err == nil:
			continue
		case errors.As(err, &ne) && ne.Timeout():
			t.Fatalf("connection still open after %v", d)
		default:
			return
		}
	}
}

// Subscribe sends a subscribe request (with since's epoch and offset when
// since is not nil) and returns the subscribed reply, failing the test
// unless it answers id on channel.
func (c *Conn) Subscribe(t testing.TB, id uint64, channel string, since *Frame) Frame {
	t.Helper()
	req := map[string]any{"type": "subscribe", "id": id, "channel": channel}
	if since != nil {
		req["since"] = map[string]any{"epoch": since.Epoch, "offset": since.Offset}
	}
	if err := c.SendJSON(req); err != nil {
		t.Fatalf("send subscribe: %v", err)
	}
	f := c.Expect(t, "subscribed")
	if f.ID != id || f.Channel != channel {
		t.Fatalf("subscribed %s, want id %d channel %s", f, id, channel)
	}
	return f
}

// Publish sends a publish request with id, the JSON data and key (none when
// empty) and returns the reply to id, published or error, skipping messages
// on the way.
func (c *Conn) Publish(id uint64, channel, data, key string) (Frame, error) {
	req := map[string]any{"type": "publish", "id": id, "channel": channel, "data": json.RawMessage(data)}
	if key != "" {
		req["key"] = key
	}
	if err := c.SendJSON(req); err != nil {
		return Frame{}, err
	}
	for {
		f, err := c.Next(Timeout)
		if err != nil {
			return Frame{}, err
		}
		if f.ID == id && (f.Type == "published" || f.Type == "error") {
			return f, nil
		}
		if f.Type != "message" {
			return f, fmt.Errorf("unexpected %s while publishing", f)
		}
	}
}

// HeapAfterGC returns the bytes of live heap, after two collections, for
// tests and benchmarks that measure what something keeps.
func HeapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
