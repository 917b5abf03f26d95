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

// A chat room on open: the last 50 messages with their sender and time, then
// the live ones, people arriving and leaving, and who is in the room.
func ExampleLast() {
	srv := herald.New(&herald.Options{Namespaces: map[string]herald.NamespaceOptions{
		"chat": {Presence: true, JoinLeave: true},
	}})
	hs := httptest.NewServer(srv)
	defer srv.Close()
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http")

	ctx := context.Background()
	c, err := client.Dial(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for _, text := range []string{"hello", "anyone?"} {
		if _, err := c.Publish(ctx, "chat:lobby", map[string]string{"text": text}); err != nil {
			log.Fatal(err)
		}
	}

	got := make(chan client.Message, 50)
	_, err = c.Subscribe(ctx, "chat:lobby", func(m client.Message) { got <- m },
		client.Last(50),
		client.OnJoin(func(m client.Member) { log.Printf("%s arrived", m.User) }),
		client.OnLeave(func(m client.Member) { log.Printf("%s left", m.User) }))
	if err != nil {
		log.Fatal(err)
	}
	for range 2 {
		m := <-got
		fmt.Println(m.Offset, string(m.Data), "sent by a client:", m.From.Client != "", "at a time:", !m.TS.IsZero())
	}
	// The room's members (presence is on for the namespace "chat").
	p, err := c.Presence(ctx, "chat:lobby", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Clients, "in the room")
	// Output:
	// 1 {"text":"hello"} sent by a client: true at a time: true
	// 2 {"text":"anyone?"} sent by a client: true at a time: true
	// 1 in the room
}

// Scrollback: page back through a channel's history, 100 messages at a
// time, newest page first.
func ExampleClient_History() {
	// The setup publishes faster than a connection's default request rate.
	srv := herald.New(&herald.Options{Rate: 1000, Burst: 1000})
	hs := httptest.NewServer(srv)
	defer srv.Close()
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http")

	ctx := context.Background()
	c, err := client.Dial(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for i := range 250 {
		if _, err := c.Publish(ctx, "news", i); err != nil {
			log.Fatal(err)
		}
	}

	for opts := (&client.HistoryOptions{Limit: 100}); opts != nil; {
		page, err := c.History(ctx, "news", opts)
		if err != nil {
			log.Fatal(err) // ErrEpochChanged: the stream was reset, start again
		}
		first, last := page.Messages[0], page.Messages[len(page.Messages)-1]
		fmt.Println(first.Offset, "to", last.Offset, "more:", page.More)
		opts = page.Older()
	}
	// Output:
	// 151 to 250 more: true
	// 51 to 150 more: true
	// 1 to 50 more: false
}
