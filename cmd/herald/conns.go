package main

import (
	"container/list"
	"net"
	"net/http"
	"sync"
)

// httpSlack is how many HTTP connections are let in beyond
// --max-connections, so that health checks, scrapes and API calls are still
// answered when WebSocket connections fill the limit.
const httpSlack = 64

// httpConns counts the HTTP connections of herald serve that have not been
// upgraded to WebSocket, so that they share --max-connections with the
// WebSocket connections (see its ConnState). Upgraded connections leave the
// count: the herald.Server counts them from then on.
type httpConns struct {
	max      int        // --max-connections; 0: no limit
	slack    int        // httpSlack
	sessions func() int // open WebSocket connections

	mu   sync.Mutex
	open map[net.Conn]*list.Element // element is non-nil while idle
	idle list.List                  // idle keep-alive connections, longest idle first
}

func newHTTPConns(max int, sessions func() int) *httpConns {
	return &httpConns{max: max, slack: httpSlack, sessions: sessions, open: map[net.Conn]*list.Element{}}
}

// ConnState is the http.Server hook. A new connection that would take the
// total (HTTP and WebSocket) to --max-connections, when h.slack HTTP
// connections are already open, closes the longest-idle keep-alive
// connection to make room, or is closed itself when none is idle.
func (h *httpConns) ConnState(c net.Conn, state http.ConnState) {
	var victim net.Conn
	h.mu.Lock()
	switch state {
	case http.StateNew:
		if h.max > 0 && len(h.open) >= h.slack && len(h.open)+h.sessions() >= h.max {
			if front := h.idle.Front(); front != nil {
				victim = h.forget(front.Value.(net.Conn))
			} else {
				victim = c
			}
		}
		if victim != c {
			h.open[c] = nil
		}
	case http.StateIdle:
		if e, ok := h.open[c]; ok && e == nil {
			h.open[c] = h.idle.PushBack(c)
		}
	case http.StateActive:
		if e := h.open[c]; e != nil {
			h.idle.Remove(e)
			h.open[c] = nil
		}
	case http.StateHijacked, http.StateClosed:
		h.forget(c)
	}
	h.mu.Unlock()
	if victim != nil {
		victim.Close()
	}
}

// forget drops c from the count and returns it; h.mu is held.
func (h *httpConns) forget(c net.Conn) net.Conn {
	if e := h.open[c]; e != nil {
		h.idle.Remove(e)
	}
	delete(h.open, c)
	return c
}

// count returns the HTTP connections open and, of those, idle.
func (h *httpConns) count() (open, idle int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.open), h.idle.Len()
}

// fdHeadroom is the descriptors the default --max-connections leaves for
// the listener, the broker's connections, --data-dir files, the log and the
// httpSlack HTTP connections let in beyond the limit.
const fdHeadroom = 256

// maxConnectionsFor is the default --max-connections for an open-file limit:
// the limit less fdHeadroom, or half the limit when it is 512 or less;
// 0 (no limit) when the limit is unknown.
func maxConnectionsFor(limit uint64) int {
	switch {
	case limit == 0:
		return 0
	case limit <= 2*fdHeadroom:
		return int(limit / 2)
	case limit > 1<<31:
		return 1<<31 - fdHeadroom
	}
	return int(limit - fdHeadroom)
}
