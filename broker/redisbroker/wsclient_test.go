package redisbroker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker/redisbroker"
)

// node is a Herald server on its own Redis broker behind an httptest
// server, as one process of a cluster would be.
type node struct {
	srv    *herald.Server
	http   *httptest.Server
	broker *redisbroker.Broker
	url    string // ws://.../ws
	once   sync.Once
}

func startNode(t *testing.T, r *redisServer, prefix string) *node {
	t.Helper()
	b := newBroker(t, r, redisbroker.Options{Prefix: prefix, Timeout: 300 * time.Millisecond})
	srv := herald.New(&herald.Options{
		Broker: b,
		Logger: slog.New(slog.DiscardHandler),
		Rate:   1e6, Burst: 1e6, // the publisher is a test, not an abuser
	})
	mux := http.NewServeMux()
	mux.Handle("GET /ws", srv)
	mux.Handle("GET /readyz", srv.ReadyHandler())
	hs := httptest.NewServer(mux)
	n := &node{srv: srv, http: hs, broker: b, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"}
	t.Cleanup(n.kill)
	return n
}

// kill stops the node at once: connections are dropped without a close
// frame, as when the process dies.
func (n *node) kill() {
	n.once.Do(func() {
		n.http.CloseClientConnections()
		n.srv.Close()
		n.http.Close()
		n.broker.Close()
	})
}

// ready returns the node's /readyz status code.
func (n *node) ready(t *testing.T) int {
	t.Helper()
	resp, err := http.Get(n.http.URL + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// frame is any frame of herald.v1, decoded loosely.
type frame struct {
	Type      string          `json:"type"`
	ID        uint64          `json:"id"`
	Channel   string          `json:"channel"`
	Epoch     string          `json:"epoch"`
	Offset    uint64          `json:"offset"`
	Recovered *bool           `json:"recovered"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Data      json.RawMessage `json:"data"`
}

// wsClient is a raw herald.v1 client: it sends exactly what a test says
// and returns every frame, with errors instead of test failures so that
// it can run in its own goroutine.
type wsClient struct {
	conn net.Conn
	r    io.Reader
	wmu  sync.Mutex
}

// dialWS connects and reads the welcome frame.
func dialWS(url string) (*wsClient, error) {
	d := ws.Dialer{Protocols: []string{"herald.v1"}, Timeout: 5 * time.Second}
	conn, br, _, err := d.Dial(context.Background(), url)
	if err != nil {
		return nil, err
	}
	c := &wsClient{conn: conn, r: conn}
	if br != nil {
		c.r = io.MultiReader(br, conn)
	}
	f, err := c.next(5 * time.Second)
	if err == nil && f.Type != "welcome" {
		err = fmt.Errorf("first frame %+v, want welcome", f)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func mustDial(t *testing.T, url string) *wsClient {
	t.Helper()
	c, err := dialWS(url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(c.close)
	return c
}

func (c *wsClient) close() { c.conn.Close() }

// send writes v as one text message.
func (c *wsClient) send(v any) error {
	payload, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.writeFrame(ws.NewFrame(ws.OpText, true, payload))
}

func (c *wsClient) writeFrame(f ws.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return ws.WriteFrame(c.conn, ws.MaskFrame(f))
}

// next returns the next JSON frame within d, answering pings on the way.
// A close frame is an error.
func (c *wsClient) next(d time.Duration) (frame, error) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	for {
		h, err := ws.ReadHeader(c.r)
		if err != nil {
			return frame{}, err
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(c.r, payload); err != nil {
			return frame{}, err
		}
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpPing:
			if err := c.writeFrame(ws.NewPongFrame(payload)); err != nil {
				return frame{}, err
			}
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(payload)
			return frame{}, fmt.Errorf("closed by the server: %d %q", code, reason)
		}
		var f frame
		if err := json.Unmarshal(payload, &f); err != nil {
			return frame{}, fmt.Errorf("frame is not JSON: %q", payload)
		}
		return f, nil
	}
}

// expect reads the next frame and fails the test unless it has type typ.
func (c *wsClient) expect(t *testing.T, typ string) frame {
	t.Helper()
	f, err := c.next(10 * time.Second)
	if err != nil {
		t.Fatalf("waiting for %s: %v", typ, err)
	}
	if f.Type != typ {
		t.Fatalf("got %+v, want a %s frame", f, typ)
	}
	return f
}

// subscribe sends a subscribe (with since when given) and returns the
// subscribed reply.
func (c *wsClient) subscribe(t *testing.T, id uint64, channel string, since *frame) frame {
	t.Helper()
	req := map[string]any{"type": "subscribe", "id": id, "channel": channel}
	if since != nil {
		req["since"] = map[string]any{"epoch": since.Epoch, "offset": since.Offset}
	}
	if err := c.send(req); err != nil {
		t.Fatalf("send subscribe: %v", err)
	}
	f := c.expect(t, "subscribed")
	if f.ID != id || f.Channel != channel {
		t.Fatalf("subscribed %+v, want id %d channel %s", f, id, channel)
	}
	return f
}

// publish sends a publish with id and key (none when empty) and returns
// the reply: published or error.
func (c *wsClient) publish(id uint64, channel, data, key string) (frame, error) {
	req := map[string]any{"type": "publish", "id": id, "channel": channel, "data": json.RawMessage(data)}
	if key != "" {
		req["key"] = key
	}
	if err := c.send(req); err != nil {
		return frame{}, err
	}
	for {
		f, err := c.next(10 * time.Second)
		if err != nil {
			return frame{}, err
		}
		if f.ID == id && (f.Type == "published" || f.Type == "error") {
			return f, nil
		}
		if f.Type != "message" {
			return f, fmt.Errorf("unexpected %+v while publishing", f)
		}
	}
}
