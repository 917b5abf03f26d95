package herald_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/heraldhq/herald"
)

// A Server is an http.Handler: mount it next to your own routes and the
// WebSocket shares their port.
func ExampleNew() {
	srv := herald.New(&herald.Options{PingInterval: 20 * time.Second})
	defer srv.Close()
	mux := http.NewServeMux()
	mux.Handle("GET /ws", srv)
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("my app"))
	})
	hs := httptest.NewServer(mux) // in production: an http.Server with ReadHeaderTimeout
	defer hs.Close()

	page, _ := http.Get(hs.URL + "/")
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	ws, _ := http.Get(hs.URL + "/ws") // not an upgrade: 426
	ws.Body.Close()
	fmt.Println(string(body), ws.StatusCode)
	// Output: my app 426
}

// http.Server.Shutdown does not touch hijacked connections: shut the HTTP
// server down first, then the WebSocket connections.
func ExampleServer_Shutdown() {
	srv := herald.New(nil)
	hs := &http.Server{Addr: "127.0.0.1:8080", Handler: srv}
	go hs.ListenAndServe()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := errors.Join(hs.Shutdown(ctx), srv.Shutdown(ctx)); err != nil {
		log.Print(err)
	}
}
