package herald_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
	"github.com/heraldhq/herald"
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

// A close reason longer than a close frame holds is cut at a character
// boundary, so the client still gets the code (a reason cut inside a UTF-8
// character would be a protocol error to it, seen as 1006).
func TestLongReasonKeepsUTF8(t *testing.T) {
	srv := startAPIServer(t, herald.Options{APIKey: "k", Tokens: mustJWT(t)})
	c := heraldtest.DialWelcome(t, srv.url, bearer(token(t, jwt.MapClaims{"sub": "ola", "aud": "herald"})))
	reason := strings.Repeat("é", 100) // 200 bytes; 123 fit, and byte 123 is inside a character
	status, _ := call(t, "POST", srv.api+"/api/disconnect", "k", fmt.Sprintf(`{"user":"ola","code":4500,"reason":%q}`, reason))
	if status != 200 {
		t.Fatalf("disconnect: status %d", status)
	}
	for {
		h, payload, err := c.ReadFrame(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if h.OpCode != ws.OpClose {
			continue
		}
		code, got := ws.ParseCloseFrameData(payload)
		if code != 4500 || !utf8.ValidString(got) || !strings.HasPrefix(reason, got) || len(got) < 120 {
			t.Fatalf("close %d %q (%d bytes), want 4500 and the reason cut at a character boundary", code, got, len(got))
		}
		return
	}
}

// Codes a client picks for itself share one label in
// herald_connections_closed_total, so clients cannot grow its label set.
func TestClientCloseCodesShareALabel(t *testing.T) {
	srv := startAPIServer(t, herald.Options{})
	for _, code := range []ws.StatusCode{1001, 3001, 4321, 4999} {
		c := heraldtest.DialWelcome(t, srv.url, nil)
		c.MustWriteFrame(t, ws.OpClose, true, ws.NewCloseFrameBody(code, ""))
		c.ExpectClose(t, 5*time.Second)
		c.ExpectDropped(t, 5*time.Second)
	}
	waitFor(t, "connections to close", func() bool { return srv.Connections() == 0 })
	resp, err := http.Get(srv.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`herald_connections_closed_total{code="1001"} 1`, `herald_connections_closed_total{code="client_other"} 3`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(body), `code="4321"`) {
		t.Errorf("metrics have a label for a client's own code 4321")
	}
}
