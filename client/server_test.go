package client_test

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/client"
)

// node is a real Herald server on a real socket that a test can kill
// (listener and every connection closed abruptly) and start again on the
// same address.
type node struct {
	t    *testing.T
	opts herald.Options
	addr string
	srv  *herald.Server
	hs   *httptest.Server
	// onUpgrade, when set before start, runs on every upgrade request.
	onUpgrade func()
	// tls, when set before start, serves wss:// with the certificate of
	// tls, or httptest's when it has none.
	tls *tls.Config
}

func startNode(t *testing.T, opts herald.Options) *node {
	t.Helper()
	n := &node{t: t, opts: opts, addr: "127.0.0.1:0"}
	n.start()
	t.Cleanup(n.kill)
	return n
}

func (n *node) start() {
	n.t.Helper()
	ln, err := net.Listen("tcp", n.addr)
	if err != nil {
		n.t.Fatal(err)
	}
	n.addr = ln.Addr().String()
	opts := n.opts
	n.srv = herald.New(&opts)
	mux := http.NewServeMux()
	srv := n.srv
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		if n.onUpgrade != nil {
			n.onUpgrade()
		}
		srv.ServeHTTP(w, r)
	})
	n.hs = httptest.NewUnstartedServer(mux)
	n.hs.Listener.Close()
	n.hs.Listener = ln
	if n.tls != nil {
		n.hs.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes
		n.hs.TLS = n.tls
		n.hs.StartTLS()
		return
	}
	n.hs.Start()
}

func (n *node) url() string {
	if n.tls != nil {
		return "wss://" + n.addr + "/ws"
	}
	return "ws://" + n.addr + "/ws"
}

// kill closes the listener and every connection at once, without close
// frames, as a crashed process would.
func (n *node) kill() {
	if n.hs == nil {
		return
	}
	n.hs.Listener.Close()
	n.hs.CloseClientConnections()
	n.srv.Close()
	n.hs.Close()
	n.hs = nil
}

// shutdown stops the node gracefully: every connection gets 1001.
func (n *node) shutdown() {
	n.hs.Listener.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.srv.Shutdown(ctx)
	n.hs.Close()
	n.hs = nil
}

// publishOnly is a second node's view of a shared memory broker: it
// publishes into the shared streams but takes no deliveries, because the
// memory broker delivers to one running node at a time.
type publishOnly struct{ broker.Broker }

func (publishOnly) Run(ctx context.Context, _ func(broker.Publication)) error {
	<-ctx.Done()
	return ctx.Err()
}

func dialClient(t *testing.T, url string, o *client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually waits up to d for cond.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// states records a client's state changes with their times.
type states struct {
	mu  sync.Mutex
	all []stateAt
	ch  chan client.StateChange
}

type stateAt struct {
	client.StateChange
	at time.Time
}

func newStates() *states { return &states{ch: make(chan client.StateChange, 1000)} }

func (s *states) record(ch client.StateChange) {
	s.mu.Lock()
	s.all = append(s.all, stateAt{ch, time.Now()})
	s.mu.Unlock()
	select {
	case s.ch <- ch:
	default:
	}
}

// await returns the next state change to st, failing after d.
func (s *states) await(t *testing.T, st client.State, d time.Duration) client.StateChange {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ch := <-s.ch:
			if ch.State == st {
				return ch
			}
		case <-timeout:
			t.Fatalf("no %v within %v", st, d)
		}
	}
}
