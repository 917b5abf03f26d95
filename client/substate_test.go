package client_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
	"github.com/heraldhq/herald/protocol"
)

// TestSubscriptionStates: OnState reports a subscription's confirmation,
// its wait while the server is down, its confirmation again, and its end
// when the restarted server refuses it (forbidden), with the error.
func TestSubscriptionStates(t *testing.T) {
	var deny atomic.Bool
	n := testnode.Start(t, herald.Options{Authorize: func(_ auth.Identity, _ herald.Action, _ string) bool { return !deny.Load() }})
	var mu sync.Mutex
	var got []client.SubscriptionStateChange
	c := dialClient(t, n.URL(), nil)
	_, err := c.Subscribe(t.Context(), "chat", func(client.Message) {}, client.OnState(func(ch client.SubscriptionStateChange) {
		mu.Lock()
		got = append(got, ch)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	states := func() string {
		mu.Lock()
		defer mu.Unlock()
		s := ""
		for _, ch := range got {
			s += fmt.Sprint(ch.State, " ")
		}
		return s
	}
	eventually(t, 5*time.Second, "subscribed", func() bool { return states() == "subscribed " })
	n.Kill()
	eventually(t, 5*time.Second, "subscribing", func() bool { return states() == "subscribed subscribing " })
	n.Start()
	eventually(t, 10*time.Second, "subscribed again", func() bool { return states() == "subscribed subscribing subscribed " })
	deny.Store(true)
	n.Kill()
	n.Start()
	eventually(t, 10*time.Second, "unsubscribed", func() bool {
		return states() == "subscribed subscribing subscribed subscribing unsubscribed "
	})
	mu.Lock()
	defer mu.Unlock()
	var pe *protocol.Error
	if last := got[len(got)-1]; last.Channel != "chat" || !errors.As(last.Err, &pe) || pe.Code != protocol.CodeForbidden {
		t.Errorf("last change %+v, want unsubscribed from chat with forbidden", last)
	}
}
