package herald_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heraldhq/herald"
)

// testServer is a Herald server on a real socket.
type testServer struct {
	*herald.Server
	http *httptest.Server
	url  string // ws://.../ws
}

func startServer(t *testing.T, opts *herald.Options) *testServer {
	t.Helper()
	return startServerAny(t, opts)
}

// startServerAny is startServer for tests and benchmarks.
func startServerAny(t testing.TB, opts *herald.Options) *testServer {
	t.Helper()
	srv := herald.New(opts)
	mux := http.NewServeMux()
	mux.Handle("GET /ws", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return &testServer{Server: srv, http: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"}
}
