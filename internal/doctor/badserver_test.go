package doctor_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// badServer is a plain WebSocket echo server (no subprotocol, no welcome)
// with configurable flaws, so the doctor's findings can be checked one
// flaw at a time.
type badServer struct {
	// pingEvery is the period of its ping frames; zero sends none.
	pingEvery time.Duration
	// deadAfter drops a connection that sent nothing for this long; zero
	// never drops one.
	deadAfter time.Duration
	// crashOnBadJSON drops the TCP connection, without a close frame, on a
	// text message that is not JSON.
	crashOnBadJSON bool

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

// startBadServer serves b on a real socket and returns its ws:// URL.
func startBadServer(t *testing.T, b *badServer) string {
	t.Helper()
	b.conns = map[net.Conn]bool{}
	hs := httptest.NewServer(b)
	t.Cleanup(func() {
		hs.Close()
		b.mu.Lock()
		for c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
}

func (b *badServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Counted before the upgrade: httptest.Server.Close waits for handlers
	// only until they hijack the connection.
	b.wg.Add(1)
	defer b.wg.Done()
	if r.URL.Path != "/ws" {
		io.WriteString(w, "a page\n")
		return
	}
	conn, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	b.mu.Lock()
	b.conns[conn] = true
	b.mu.Unlock()
	c := &badConn{conn: conn, lastRead: time.Now(), done: make(chan struct{})}
	defer close(c.done)
	defer conn.Close()
	if b.pingEvery > 0 || b.deadAfter > 0 {
		b.wg.Go(func() { b.heartbeat(c) })
	}
	b.read(c)
}

type badConn struct {
	conn     net.Conn
	done     chan struct{}
	mu       sync.Mutex
	lastRead time.Time
}

func (c *badConn) write(op ws.OpCode, payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	ws.WriteFrame(c.conn, ws.NewFrame(op, true, payload))
}

func (c *badConn) silence() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Since(c.lastRead)
}

// heartbeat pings every pingEvery and drops connections silent for
// deadAfter, checking every 50 ms.
func (b *badServer) heartbeat(c *badConn) {
	check := time.NewTicker(50 * time.Millisecond)
	defer check.Stop()
	var pings <-chan time.Time
	if b.pingEvery > 0 {
		t := time.NewTicker(b.pingEvery)
		defer t.Stop()
		pings = t.C
	}
	for {
		select {
		case <-c.done:
			return
		case <-pings:
			c.write(ws.OpPing, nil)
		case <-check.C:
			if b.deadAfter > 0 && c.silence() > b.deadAfter {
				c.conn.Close()
				return
			}
		}
	}
}

// read echoes text and binary messages, answers pings and close frames,
// and closes with 1002 on a reserved opcode.
func (b *badServer) read(c *badConn) {
	for {
		h, err := ws.ReadHeader(c.conn)
		if err != nil {
			return
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(c.conn, payload); err != nil {
			return
		}
		ws.Cipher(payload, h.Mask, 0)
		c.mu.Lock()
		c.lastRead = time.Now()
		c.mu.Unlock()
		switch h.OpCode {
		case ws.OpPing:
			c.write(ws.OpPong, payload)
		case ws.OpPong:
		case ws.OpClose:
			c.write(ws.OpClose, payload)
			return
		case ws.OpText, ws.OpBinary:
			if b.crashOnBadJSON && !json.Valid(payload) {
				return
			}
			c.write(h.OpCode, payload)
		default:
			c.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusProtocolError, "reserved opcode"))
			return
		}
	}
}
