package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
	"github.com/heraldhq/herald/protocol"
)

// jwtNode starts a Herald server that takes JWTs signed with testSecret and
// closes connections with 4001 when their token expires.
func jwtNode(t *testing.T) *testnode.Node {
	t.Helper()
	v, err := auth.NewJWT(auth.JWTOptions{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	return testnode.Start(t, herald.Options{Tokens: v})
}

// TestRefreshKeepsConnectionToServer connects to Herald with tokens that
// live 3 s and a token callback, for 8 s: the client refreshes the token on
// the open connection again and again, never reconnects, and its
// subscription receives every message published meanwhile.
func TestRefreshKeepsConnectionToServer(t *testing.T) {
	n := jwtNode(t)
	k := &tokens{t: t, ttl: 3 * time.Second}
	var errs errorLog
	var mu sync.Mutex
	var changes []client.StateChange
	c := dialClient(t, n.URL(), &client.Options{
		TokenFunc: k.get,
		OnError:   errs.add,
		OnStateChange: func(ch client.StateChange) {
			mu.Lock()
			changes = append(changes, ch)
			mu.Unlock()
		},
	})
	var got seen
	if _, err := c.Subscribe(t.Context(), "chat", got.handle); err != nil {
		t.Fatal(err)
	}
	pubToken, err := auth.SignHS256(testSecret, "bob", nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	pub := dialClient(t, n.URL(), &client.Options{Token: pubToken})

	const total = 40 // one every 200 ms for 8 s
	for i := 1; i <= total; i++ {
		if _, err := pub.Publish(t.Context(), "chat", numbered{N: i}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	eventually(t, 5*time.Second, "all messages delivered", func() bool { return got.count() >= total })
	got.checkExactlyOnce(t, total)

	// 8 s of 3 s tokens (2-3 s left when signed, as exp is in whole
	// seconds), refreshed halfway: at least 5 refreshes.
	if n := k.count(); n < 6 {
		t.Errorf("token callback called %d times in 8 s of 3 s tokens, want 6 or more", n)
	}
	if e := errs.all(); len(e) != 0 {
		t.Errorf("OnError got %v", e)
	}
	if st := c.State(); st != client.StateConnected {
		t.Errorf("state %v, want connected", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 2 || changes[0].State != client.StateConnecting || changes[1].State != client.StateConnected {
		t.Errorf("state changes %+v, want connecting and connected only", changes)
	}
}

// TestStaticTokenExpiresOnServer connects to Herald with a 2 s token and no
// token callback: the server closes the connection with 4001 at expiry, and
// the client stops with that close error, as it reports any rejected token
// it cannot replace.
func TestStaticTokenExpiresOnServer(t *testing.T) {
	n := jwtNode(t)
	tok, err := auth.SignHS256(testSecret, "alice", nil, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	exp := jwtExp(t, tok)
	var mu sync.Mutex
	var changes []client.StateChange
	c := dialClient(t, n.URL(), &client.Options{
		Token: tok,
		OnStateChange: func(ch client.StateChange) {
			mu.Lock()
			changes = append(changes, ch)
			mu.Unlock()
		},
	})
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("client still running 10 s after a 2 s token")
	}
	if late := time.Since(exp); late < 0 || late > 2*time.Second {
		t.Errorf("client stopped %v after the token's exp", late)
	}
	var ce *client.CloseError
	if !errors.As(c.Err(), &ce) || ce.Code != protocol.CloseUnauthorized {
		t.Fatalf("Err() = %v, want close 4001", c.Err())
	}
	_, err = c.Publish(t.Context(), "chat", "hi")
	if !errors.Is(err, client.ErrClosed) || !errors.As(err, &ce) {
		t.Errorf("Publish after stop: %v, want ErrClosed wrapping the close error", err)
	}
	eventually(t, time.Second, "closed state reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(changes) > 0 && changes[len(changes)-1].State == client.StateClosed
	})
	mu.Lock()
	defer mu.Unlock()
	var states []client.State
	for _, ch := range changes {
		states = append(states, ch.State)
	}
	if fmt.Sprint(states) != "[connecting connected closed]" || !errors.As(changes[2].Err, &ce) {
		t.Errorf("state changes %+v, want connecting, connected, closed with close 4001", changes)
	}
}

// TestRefreshNarrowingChannelsEndsSubscription refreshes to a token that no
// longer allows one of two channels: the server ends that subscription, and
// the client ends it too, with a forbidden error and its OnError callback,
// while the other stays.
func TestRefreshNarrowingChannelsEndsSubscription(t *testing.T) {
	n := jwtNode(t)
	var mu sync.Mutex
	calls := 0
	tokenFunc := func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		channels := []string{"chat", "news"}
		if calls > 1 {
			channels = []string{"news"}
		}
		return auth.SignHS256(testSecret, "carol", channels, 3*time.Second)
	}
	c := dialClient(t, n.URL(), &client.Options{TokenFunc: tokenFunc})
	ended := make(chan error, 1)
	chat, err := c.Subscribe(t.Context(), "chat", func(client.Message) {}, client.OnError(func(err error) { ended <- err }))
	if err != nil {
		t.Fatal(err)
	}
	news, err := c.Subscribe(t.Context(), "news", func(client.Message) {})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeForbidden || pe.Message == "" {
			t.Fatalf("OnError got %v, want a forbidden error with the server's reason", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription the refreshed token no longer allows did not end")
	}
	<-chat.Done()
	if err := news.Err(); err != nil {
		t.Fatalf("news ended with %v, want it kept", err)
	}
}
