package redisbroker_test

import (
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker/redisbroker"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
)

// node is a Herald server on its own Redis broker, as one process of a
// cluster would be, with /readyz next to /ws.
type node struct {
	*testnode.Node
	broker *redisbroker.Broker
	once   sync.Once
}

func startNode(t *testing.T, r *redisServer, prefix string) *node {
	t.Helper()
	return startNodeWith(t, redisbroker.Options{Addr: r.addr, Prefix: prefix, Timeout: 300 * time.Millisecond})
}

// startNodeWith starts a node on a broker of opts.
func startNodeWith(t *testing.T, opts redisbroker.Options) *node {
	t.Helper()
	b := openBroker(t, opts)
	n := &node{broker: b, Node: testnode.New(t, herald.Options{
		Broker: b,
		Logger: slog.New(slog.DiscardHandler),
		Rate:   1e6, Burst: 1e6, // the publisher is a test, not an abuser
	})}
	n.Routes = func(mux *http.ServeMux, srv *herald.Server) { mux.Handle("GET /readyz", srv.ReadyHandler()) }
	n.Start()
	t.Cleanup(n.kill)
	return n
}

// kill stops the node and its broker at once: connections are dropped
// without a close frame, as when the process dies.
func (n *node) kill() {
	n.once.Do(func() {
		n.Kill()
		n.broker.Close()
	})
}

// ready returns the node's /readyz status code.
func (n *node) ready(t *testing.T) int {
	t.Helper()
	resp, err := http.Get(n.HTTPURL("/readyz"))
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
