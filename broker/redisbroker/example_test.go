package redisbroker_test

import (
	"context"
	"errors"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/broker/redisbroker"
)

// Every node of a service runs the same code against the same Redis; a
// load balancer spreads the clients over the nodes.
func ExampleNew() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rb, err := redisbroker.New(ctx, redisbroker.Options{
		URL:        "redis://127.0.0.1:6379/0",
		History:    broker.HistoryOptions{Size: 1000, TTL: 2 * time.Minute},
		Namespaces: map[string]broker.HistoryOptions{"feed": {Size: 10_000, TTL: time.Hour}},
	})
	if err != nil {
		log.Fatal(err) // wraps broker.ErrUnavailable when Redis cannot be reached
	}
	srv := herald.New(&herald.Options{Broker: rb})
	mux := http.NewServeMux()
	mux.Handle("GET /ws", srv)
	mux.Handle("GET /readyz", srv.ReadyHandler()) // fails while Redis is unreachable
	hs := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := hs.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()

	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The server does not close a broker it was given: close it last.
	err = errors.Join(hs.Shutdown(sctx), srv.Shutdown(sctx), rb.Close())
	if err != nil {
		log.Print(err)
	}
}
