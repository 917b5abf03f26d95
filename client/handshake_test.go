package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
)

// TestWrongURLIsTerminal dials a server that serves a page at / and Herald
// at /ws, at the wrong paths: Dial fails at once, without retrying, with a
// HandshakeError that says what the URL answered.
func TestWrongURLIsTerminal(t *testing.T) {
	srv := herald.New(nil)
	t.Cleanup(func() { srv.Close() })
	var requests atomic.Int32
	mux := http.NewServeMux()
	mux.Handle("GET /ws", srv)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte("<!doctype html><title>demo</title>"))
	})
	mux.Handle("GET /old", http.RedirectHandler("/ws", http.StatusFound))
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	base := "ws" + strings.TrimPrefix(hs.URL, "http")
	for _, tc := range []struct {
		url    string
		status int
		want   string
	}{
		{base, 200, base + " answered HTTP 200 text/html, not a WebSocket upgrade: is the path /ws?"},
		{base + "/", 200, "not a WebSocket upgrade: is the path /ws?"},
		{base + "/old", 302, base + "/old answered HTTP 302 text/html (Location: /ws), not a WebSocket upgrade"},
		{base + "/nope", 404, "upgrade refused with HTTP 404: 404 page not found"},
	} {
		requests.Store(0)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		start := time.Now()
		_, err := client.Dial(ctx, tc.url, nil)
		cancel()
		var he *client.HandshakeError
		if !errors.As(err, &he) || he.Status != tc.status || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Dial %s: %v, want a HandshakeError %d saying %q", tc.url, err, tc.status, tc.want)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("Dial %s took %v", tc.url, took)
		}
		if n := requests.Load(); n != 1 {
			t.Errorf("Dial %s: %d requests, want 1", tc.url, n)
		}
	}
}
