package herald_test

import (
	"context"
	"errors"
	"log"
	"net/http"
	"time"

	"github.com/heraldhq/herald"
)

// A Server is an http.Handler: mount it next to your own routes and the
// WebSocket shares their port.
func ExampleNew() {
	srv := herald.New(&herald.Options{PingInterval: 20 * time.Second})
	mux := http.NewServeMux()
	mux.Handle("GET /ws", srv)
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("my app"))
	})
	hs := &http.Server{Addr: "127.0.0.1:8080", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	_ = hs
	srv.Close()
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
