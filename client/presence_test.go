package client_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/protocol"
)

// TestPresence: the members and counts of a present answer, count_only on
// the wire for CountOnly, and presence off as a bad_request error.
func TestPresence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reqs := make(chan map[string]any, 3)
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
			req := s.nextExtra(t, "presence")
			reqs <- req
			s.sendRaw(fmt.Sprintf(`{"type":"present","id":%v,"channel":"chat","clients":3,"users":1,"truncated":true,`+
				`"members":[{"client":"s_1","user":"alice"},{"client":"s_2","user":"alice"}]}`, req["id"]))
			req = s.nextExtra(t, "presence")
			reqs <- req
			s.sendRaw(fmt.Sprintf(`{"type":"present","id":%v,"channel":"chat","clients":3,"users":1}`, req["id"]))
			req = s.nextExtra(t, "presence")
			s.sendRaw(fmt.Sprintf(`{"type":"error","id":%v,"code":"bad_request","message":"presence is off for this namespace"}`, req["id"]))
		}}
		c := dialFake(t, f, nil)
		p, err := c.Presence(t.Context(), "chat", nil)
		if err != nil {
			t.Fatal(err)
		}
		want := []client.Member{{Client: "s_1", User: "alice"}, {Client: "s_2", User: "alice"}}
		if p.Channel != "chat" || p.Clients != 3 || p.Users != 1 || !p.Truncated || fmt.Sprint(p.Members) != fmt.Sprint(want) {
			t.Errorf("presence %+v", p)
		}
		p, err = c.Presence(t.Context(), "chat", &client.PresenceOptions{CountOnly: true})
		if err != nil || p.Clients != 3 || p.Users != 1 || len(p.Members) != 0 {
			t.Errorf("count only: %+v, %v", p, err)
		}
		if first, second := <-reqs, <-reqs; first["count_only"] != nil || second["count_only"] != true {
			t.Errorf("requests %v, %v: want count_only only on the second", first, second)
		}
		_, err = c.Presence(t.Context(), "chat", nil)
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeBadRequest || !strings.Contains(err.Error(), "presence is off") {
			t.Errorf("presence off: %v, want bad_request", err)
		}
	})
}

// TestJoinLeave: join and leave events of the subscription's channel reach
// OnJoin and OnLeave in order with its messages; those of another channel
// do not.
func TestJoinLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
			s.next(t, "subscribe")
			s.sendRaw(`{"type":"join","channel":"chat","member":{"client":"s_4","user":"bob"}}`)
			s.sendRaw(msgFrame(1, ""))
			s.sendRaw(`{"type":"join","channel":"other","member":{"client":"s_5"}}`)
			s.sendRaw(`{"type":"leave","channel":"chat","member":{"client":"s_4","user":"bob"}}`)
		}}
		c := dialFake(t, f, nil)
		var mu sync.Mutex
		var events []string
		add := func(e string) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}
		_, err := c.Subscribe(t.Context(), "chat", func(m client.Message) { add(fmt.Sprint("message ", m.Offset)) },
			client.OnJoin(func(m client.Member) { add("join " + m.Client + " " + m.User) }),
			client.OnLeave(func(m client.Member) { add("leave " + m.Client + " " + m.User) }))
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if got := strings.Join(events, ", "); got != "join s_4 bob, message 1, leave s_4 bob" {
			t.Errorf("events %q", got)
		}
	})
}
