package herald_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald"
)

// testServer is a Herald server on a real socket.
type testServer struct {
	*herald.Server
	http *httptest.Server
	url  string // ws://.../ws
}

func startServer(t *testing.T, opts *herald.Options) *testServer {
	t.Helper()
	srv := herald.New(opts)
	mux := http.NewServeMux()
	mux.Handle("GET /ws", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return &testServer{Server: srv, http: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"}
}

// wsConn is a raw WebSocket client that sees every frame, so tests can
// check exactly what the server sends and misbehave on purpose.
type wsConn struct {
	t    *testing.T
	conn net.Conn
	r    io.Reader
	// AutoPong answers the server's ping frames while reading.
	autoPong bool
}

func dial(t *testing.T, url string) *wsConn {
	t.Helper()
	c, err := dialHeader(t, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return c
}

// dialHeader dials with extra upgrade headers; a refused upgrade is a
// ws.StatusError.
func dialHeader(t *testing.T, url string, h http.Header) (*wsConn, error) {
	t.Helper()
	d := ws.Dialer{Protocols: []string{"herald.v1"}, Timeout: 5 * time.Second, Header: ws.HandshakeHeaderHTTP(h)}
	conn, br, _, err := d.Dial(context.Background(), url)
	if err != nil {
		return nil, err
	}
	c := &wsConn{t: t, conn: conn, r: conn, autoPong: true}
	if br != nil {
		c.r = io.MultiReader(br, conn)
	}
	t.Cleanup(func() { conn.Close() })
	return c, nil
}

// dialWelcome dials and reads the welcome frame.
func dialWelcome(t *testing.T, url string) *wsConn {
	t.Helper()
	c := dial(t, url)
	c.expect("welcome")
	return c
}

// writeFrame sends one masked frame.
func (c *wsConn) writeFrame(op ws.OpCode, fin bool, payload []byte) {
	c.t.Helper()
	f := ws.MaskFrame(ws.NewFrame(op, fin, payload))
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := ws.WriteFrame(c.conn, f); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

// send writes one text message.
func (c *wsConn) send(text string) {
	c.t.Helper()
	c.writeFrame(ws.OpText, true, []byte(text))
}

// readFrame returns the next frame from the server within d.
func (c *wsConn) readFrame(d time.Duration) (ws.Header, []byte, error) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	h, err := ws.ReadHeader(c.r)
	if err != nil {
		return h, nil, err
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(c.r, payload); err != nil {
		return h, nil, err
	}
	return h, payload, nil
}

// next returns the next JSON frame, answering pings on the way when
// autoPong is set. A close frame fails the test.
func (c *wsConn) next() map[string]any {
	c.t.Helper()
	for {
		h, payload, err := c.readFrame(5 * time.Second)
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		switch h.OpCode {
		case ws.OpPing:
			if c.autoPong {
				c.writeFrame(ws.OpPong, true, payload)
			}
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(payload)
			c.t.Fatalf("unexpected close %d %q", code, reason)
		}
		var m map[string]any
		if err := json.Unmarshal(payload, &m); err != nil {
			c.t.Fatalf("frame is not JSON: %q", payload)
		}
		return m
	}
}

// expect reads the next JSON frame and checks its type.
func (c *wsConn) expect(typ string) map[string]any {
	c.t.Helper()
	m := c.next()
	if m["type"] != typ {
		c.t.Fatalf("got %v, want a %s frame", m, typ)
	}
	return m
}

// expectError reads an error frame and checks its code and id (0: absent).
func (c *wsConn) expectError(code string, id float64) map[string]any {
	c.t.Helper()
	m := c.expect("error")
	if m["code"] != code {
		c.t.Fatalf("error code %v, want %s (%v)", m["code"], code, m)
	}
	gotID, _ := m["id"].(float64)
	if gotID != id {
		c.t.Fatalf("error id %v, want %v (%v)", m["id"], id, m)
	}
	if msg, _ := m["message"].(string); msg == "" {
		c.t.Fatalf("error without message: %v", m)
	}
	return m
}

// expectClose reads frames until a close frame arrives within d and returns
// its code; data frames before it are skipped.
func (c *wsConn) expectClose(d time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		h, payload, err := c.readFrame(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("waiting for close frame: %v", err)
		}
		if h.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(payload)
			return int(code)
		}
	}
}

// expectEOF checks that the server drops the connection within d, without a
// close frame.
func (c *wsConn) expectDropped(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		h, _, err := c.readFrame(time.Until(deadline))
		var ne net.Error
		switch {
		case err == nil && h.OpCode == ws.OpClose:
			c.t.Fatal("got a close frame, want the connection dropped without one")
		case err == nil:
			continue
		case errors.As(err, &ne) && ne.Timeout():
			c.t.Fatalf("connection still open after %v", d)
		default:
			return
		}
	}
}
