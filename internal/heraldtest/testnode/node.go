// Package testnode is test support: a real Herald server on a real socket
// that a test can kill, as a crashed process dies, and start again on the
// same address.
//
// It imports herald, so herald's own in-package tests cannot use it; the raw
// client in the parent package heraldtest does not.
package testnode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
)

// Node serves a herald.Server at GET /ws on 127.0.0.1. Each Start makes a
// new server from Options on the address of the first start. Set the
// exported fields while the node is stopped; they apply from the next
// start. The methods may be called from any goroutine.
type Node struct {
	// Options configure the server of each start.
	Options herald.Options
	// TLS, when not nil, serves wss:// with the certificate of TLS, or
	// httptest's when it has none.
	TLS *tls.Config
	// OnUpgrade, when set, runs on every request to /ws.
	OnUpgrade func()
	// Routes, when set, adds handlers next to /ws on each start, for the
	// server of that start.
	Routes func(mux *http.ServeMux, srv *herald.Server)

	t    testing.TB
	mu   sync.Mutex // guards what follows
	addr string
	srv  *herald.Server
	hs   *httptest.Server
}

// New returns a node that is not started yet and is killed when the test
// ends.
func New(t testing.TB, opts herald.Options) *Node {
	n := &Node{Options: opts, t: t, addr: "127.0.0.1:0"}
	t.Cleanup(n.Kill)
	return n
}

// Start returns a started node with opts, killed when the test ends.
func Start(t testing.TB, opts herald.Options) *Node {
	t.Helper()
	n := New(t, opts)
	n.Start()
	return n
}

// Start serves a new server from n.Options, on the address of the first
// start. A failure to listen fails the test.
func (n *Node) Start() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	ln, err := net.Listen("tcp", n.addr)
	if err != nil {
		n.t.Errorf("start node: %v", err) // Fatal cannot stop the test from another goroutine
		return
	}
	n.addr = ln.Addr().String()
	opts := n.Options
	srv := herald.New(&opts)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		if n.OnUpgrade != nil {
			n.OnUpgrade()
		}
		srv.ServeHTTP(w, r)
	})
	if n.Routes != nil {
		n.Routes(mux, srv)
	}
	n.srv = srv
	n.hs = httptest.NewUnstartedServer(mux)
	n.hs.Listener.Close()
	n.hs.Listener = ln
	if n.TLS != nil {
		n.hs.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes
		n.hs.TLS = n.TLS
		n.hs.StartTLS()
		return
	}
	n.hs.Start()
}

// Addr returns the node's host:port.
func (n *Node) Addr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addr
}

// URL returns the ws:// (with TLS, wss://) URL of /ws.
func (n *Node) URL() string {
	if n.TLS != nil {
		return "wss://" + n.Addr() + "/ws"
	}
	return "ws://" + n.Addr() + "/ws"
}

// HTTPURL returns the http:// (with TLS, https://) URL of path.
func (n *Node) HTTPURL(path string) string {
	if n.TLS != nil {
		return "https://" + n.Addr() + path
	}
	return "http://" + n.Addr() + path
}

// Certificate returns the certificate the running node serves with TLS.
func (n *Node) Certificate() *x509.Certificate {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hs.Certificate()
}

// Kill closes the listener and every connection at once, without close
// frames, as a crashed process would. Killing a stopped node does nothing.
func (n *Node) Kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.hs == nil {
		return
	}
	n.hs.Listener.Close()
	n.hs.CloseClientConnections()
	n.srv.Close()
	n.hs.Close()
	n.hs = nil
}

// Shutdown stops the node gracefully: every connection gets 1001.
func (n *Node) Shutdown() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.hs.Listener.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.srv.Shutdown(ctx)
	n.hs.Close()
	n.hs = nil
}

// PublishOnly is a second node's view of a broker shared with the first,
// such as one memory broker: it publishes into the shared streams but takes
// no deliveries, because a memory broker delivers to one running node at a
// time.
type PublishOnly struct{ broker.Broker }

// Run takes no deliveries and returns when ctx ends.
func (PublishOnly) Run(ctx context.Context, _ func(broker.Publication)) error {
	<-ctx.Done()
	return ctx.Err()
}
