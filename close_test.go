package herald_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/heraldhq/herald/internal/heraldtest"
)

func TestInvalidUTF8Closes1007(t *testing.T) {
	srv := startServer(t, nil)
	c := heraldtest.DialWelcome(t, srv.url, nil)
	c.MustWriteFrame(t, ws.OpText, true, []byte("{\"type\":\"ping\",\"x\":\"\xff\xfe\"}"))
	if code := c.ExpectClose(t, 5*time.Second); code != 1007 {
		t.Fatalf("close code %d, want 1007", code)
	}
}

func TestClientCloseIsEchoed(t *testing.T) {
	srv := startServer(t, nil)
	c := heraldtest.DialWelcome(t, srv.url, nil)
	c.MustWriteFrame(t, ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"))
	if code := c.ExpectClose(t, 5*time.Second); code != 1000 {
		t.Fatalf("echoed close code %d, want 1000", code)
	}
	c.ExpectDropped(t, 5*time.Second)
	waitFor(t, "connection count to drop", func() bool { return srv.Connections() == 0 })
}

// A close frame's code must be one RFC 6455 §7.4 lets a peer send; any other
// is a protocol error, answered with 1002 instead of an echo.
func TestCloseCodesOnTheWire(t *testing.T) {
	srv := startServer(t, nil)
	cases := []struct {
		code, want int
	}{
		{1000, 1000}, {1001, 1001}, {1003, 1003}, {1007, 1007}, {1012, 1012}, {1014, 1014},
		{3000, 3000}, {4999, 4999},
		{999, 1002}, {1004, 1002}, {1005, 1002}, {1006, 1002}, {1015, 1002}, {1016, 1002},
		{2999, 1002}, {5000, 1002}, {65535, 1002},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			c := heraldtest.DialWelcome(t, srv.url, nil)
			c.MustWriteFrame(t, ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusCode(tc.code), ""))
			if got := c.ExpectClose(t, 5*time.Second); got != tc.want {
				t.Fatalf("client sent %d: server answered %d, want %d", tc.code, got, tc.want)
			}
		})
	}
}

// After closing for a protocol error, the server closes the TCP connection as
// soon as the client has answered its close frame (RFC 6455 §7.1.1), instead
// of reading on for a while.
func TestProtocolErrorEndsTCPAfterHandshake(t *testing.T) {
	srv := startServer(t, nil)
	for _, bad := range []struct {
		name string
		op   ws.OpCode
		data []byte
		want int
	}{
		{"invalid UTF-8", ws.OpText, []byte("\xff\xfe"), 1007},
		{"reserved opcode", ws.OpCode(0x3), nil, 1002},
	} {
		t.Run(bad.name, func(t *testing.T) {
			c := heraldtest.DialWelcome(t, srv.url, nil)
			c.MustWriteFrame(t, bad.op, true, bad.data)
			if code := c.ExpectClose(t, 5*time.Second); code != bad.want {
				t.Fatalf("close code %d, want %d", code, bad.want)
			}
			c.MustWriteFrame(t, ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusCode(bad.want), ""))
			// The server used to keep reading for a second; well under that
			// is the handshake's own round trip.
			c.ExpectDropped(t, 500*time.Millisecond)
		})
	}
}
