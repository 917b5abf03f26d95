package herald_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/protocol"
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

// The program that embeds the server publishes with Publish, as the HTTP
// API does: same validation, same idempotency keys.
func ExampleServer_Publish() {
	srv := herald.New(nil)
	defer srv.Close()
	ctx := context.Background()

	pos, err := srv.Publish(ctx, "news", []byte(`{"title":"hello"}`), &herald.PublishOptions{Key: "news-1"})
	fmt.Println(pos.Offset, err)
	pos, err = srv.Publish(ctx, "news", []byte(`{"title":"hello"}`), &herald.PublishOptions{Key: "news-1"})
	fmt.Println(pos.Offset, err) // the same key: applied once

	_, err = srv.Publish(ctx, "bad channel!", []byte(`1`), nil)
	var pe *protocol.Error
	if errors.As(err, &pe) {
		fmt.Println(pe.Code)
	}
	_, err = srv.Publish(ctx, "news", []byte(`not JSON`), nil)
	fmt.Println(err)
	// Output:
	// 1 <nil>
	// 1 <nil>
	// invalid_channel
	// herald: publish to "news": bad_request: data is not JSON
}

// Disconnect closes every connection of a user; a client told 4403 stops
// reconnecting.
func ExampleServer_Disconnect() {
	srv := herald.New(&herald.Options{
		// The application's own sessions: here, a header names the user.
		Authenticate: func(r *http.Request) (*auth.Identity, error) {
			return &auth.Identity{User: r.Header.Get("X-User")}, nil
		},
	})
	defer srv.Close()
	hs := httptest.NewServer(srv)
	defer hs.Close()
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), &client.Options{Header: http.Header{"X-User": {"mallory"}}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	n, err := srv.Disconnect("mallory", protocol.CloseForbidden, "banned")
	fmt.Println(n, err)
	<-c.Done()
	fmt.Println(c.Err())
	// Output:
	// 1 <nil>
	// herald: connection closed with 4403 (forbidden): banned
}
