package client_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
)

func Example() {
	// A Herald server to talk to.
	srv := herald.New(nil)
	mux := http.NewServeMux()
	mux.Handle("GET /ws", srv)
	hs := httptest.NewServer(mux)
	defer srv.Close()
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"

	ctx := context.Background()
	c, err := client.Dial(ctx, url, &client.Options{
		OnStateChange: func(ch client.StateChange) {
			if ch.State == client.StateDisconnected {
				log.Printf("herald: %v; retrying in %v", ch.Err, ch.RetryIn)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	got := make(chan client.Message, 1)
	_, err = c.Subscribe(ctx, "chat:lobby", func(m client.Message) { got <- m },
		client.OnRecovery(func(r client.Recovery) {
			if !r.Recovered {
				log.Printf("missed messages on %s: reload the state", r.Channel)
			}
		}))
	if err != nil {
		log.Fatal(err)
	}
	offset, err := c.Publish(ctx, "chat:lobby", map[string]string{"text": "hi"})
	if err != nil {
		log.Fatal(err)
	}
	m := <-got
	fmt.Println(offset, m.Channel, m.Offset, string(m.Data))
	// Output: 1 chat:lobby 1 {"text":"hi"}
}
