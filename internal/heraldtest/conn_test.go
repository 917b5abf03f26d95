package heraldtest_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// script serves WebSocket connections: each gets a welcome, then for every
// text message received the reply of that text; "ping" runs pingPong.
func script(t *testing.T, replies map[string]func(net.Conn)) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		defer conn.Close()
		wsutil.WriteServerText(conn, []byte(`{"type":"welcome"}`))
		for {
			msg, err := wsutil.ReadClientText(conn)
			if err != nil {
				return
			}
			if string(msg) == "ping" {
				pingPong(conn)
				continue
			}
			reply, ok := replies[string(msg)]
			if !ok {
				return
			}
			reply(conn)
		}
	}))
	t.Cleanup(hs.Close)
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

// pingPong sends a ping and then a pong frame with id 1 if the client
// answered within 200 ms, or a frame of type silent if it did not.
func pingPong(c net.Conn) {
	ws.WriteFrame(c, ws.NewPingFrame([]byte("p")))
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	defer c.SetReadDeadline(time.Time{})
	h, err := ws.ReadHeader(c)
	if err != nil || h.OpCode != ws.OpPong {
		wsutil.WriteServerText(c, []byte(`{"type":"silent"}`))
		return
	}
	io.CopyN(io.Discard, c, h.Length) // the pong's payload
	wsutil.WriteServerText(c, []byte(`{"type":"pong","id":1}`))
}

func TestConnFrames(t *testing.T) {
	url := script(t, map[string]func(net.Conn){
		"bad": func(c net.Conn) {
			wsutil.WriteServerText(c, []byte(`{"type":"error","id":2,"code":"bad_request","message":"no"}`))
		},
		"close": func(c net.Conn) {
			wsutil.WriteServerText(c, []byte(`{"type":"message"}`))
			ws.WriteFrame(c, ws.NewCloseFrame(ws.NewCloseFrameBody(1001, "bye")))
		},
	})
	c := heraldtest.DialWelcome(t, url, nil)
	c.Send(t, "ping")
	if f := c.Expect(t, "pong"); f.ID != 1 || f.Fields()["id"] != 1.0 || f.String() != `{"type":"pong","id":1}` {
		t.Errorf("pong frame %+v", f)
	}
	c.Send(t, "bad")
	c.ExpectError(t, "bad_request", 2)
	c.Send(t, "close")
	if code := c.ExpectClose(t, time.Second); code != 1001 {
		t.Errorf("close code %d, want 1001", code)
	}

	c = heraldtest.DialWelcome(t, url, nil)
	c.Send(t, "close")
	c.Expect(t, "message")
	_, err := c.Next(time.Second)
	var ce *heraldtest.CloseError
	if !errors.As(err, &ce) || ce.Code != 1001 || ce.Reason != "bye" {
		t.Errorf("Next on a close frame: %v, want a CloseError 1001 bye", err)
	}
}

func TestConnFragments(t *testing.T) {
	url := script(t, map[string]func(net.Conn){
		"whole": func(c net.Conn) { wsutil.WriteServerText(c, []byte(`{"type":"joined"}`)) },
	})
	c := heraldtest.DialWelcome(t, url, nil)
	c.MustWriteFrame(t, ws.OpText, false, []byte("wh"))
	c.MustWriteFrame(t, ws.OpContinuation, true, []byte("ole"))
	c.Expect(t, "joined") // the script answers only the reassembled message
}

func TestConnDropped(t *testing.T) {
	url := script(t, map[string]func(net.Conn){
		"drop": func(c net.Conn) { c.Close() },
	})
	c := heraldtest.DialWelcome(t, url, nil)
	c.Send(t, "drop")
	c.ExpectDropped(t, time.Second)

	c = heraldtest.DialWelcome(t, url, nil)
	c.IgnorePings = true
	c.Send(t, "ping")
	c.Expect(t, "silent")
}
