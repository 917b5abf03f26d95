package client_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/protocol"
)

// dialFake connects a client to f.
func dialFake(t *testing.T, f *fakeServer, o *client.Options) *client.Client {
	t.Helper()
	c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(o))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// got collects what a handler received.
type got struct {
	mu   sync.Mutex
	msgs []client.Message
}

func (g *got) handle(m client.Message) {
	g.mu.Lock()
	g.msgs = append(g.msgs, m)
	g.mu.Unlock()
}

func (g *got) offsets() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var s []string
	for _, m := range g.msgs {
		s = append(s, fmt.Sprint(m.Offset))
	}
	return strings.Join(s, " ")
}

func msgFrame(offset uint64, extra string) string {
	return fmt.Sprintf(`{"type":"message","channel":"chat","offset":%d%s,"data":{"n":%d}}`, offset, extra, offset)
}

// TestMessageMetadata: ts and from reach the handler as Message.TS and
// From; a message without them (the HTTP API's, or an older server's)
// has zero values.
func TestMessageMetadata(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
			s.next(t, "subscribe")
			s.sendRaw(msgFrame(1, `,"ts":1767225600123,"from":{"client":"s_8KQ2","user":"alice"}`))
			s.sendRaw(msgFrame(2, `,"ts":1767225600124,"from":{"client":"s_9"}`))
			s.sendRaw(msgFrame(3, ``))
		}}
		c := dialFake(t, f, nil)
		var g got
		if _, err := c.Subscribe(t.Context(), "chat", g.handle); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if g.offsets() != "1 2 3" {
			t.Fatalf("handler got offsets %q, want 1 2 3", g.offsets())
		}
		m := g.msgs
		if !m[0].TS.Equal(time.UnixMilli(1767225600123)) || m[0].From != (client.Member{Client: "s_8KQ2", User: "alice"}) {
			t.Errorf("first message TS %v From %+v", m[0].TS, m[0].From)
		}
		if m[1].From != (client.Member{Client: "s_9"}) {
			t.Errorf("anonymous sender: From %+v", m[1].From)
		}
		if !m[2].TS.IsZero() || m[2].From != (client.Member{}) {
			t.Errorf("message without metadata: TS %v From %+v, want zero", m[2].TS, m[2].From)
		}
	})
}

// TestLastBacklogThenLive: the first subscribe carries last; the backlog
// (here history holds 3 of the 5 asked for) and the live messages reach
// the handler in order with no gap, a duplicate at the boundary is dropped,
// and the resubscribe after a reconnect asks with since, not last.
func TestLastBacklogThenLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		subs := make(chan string, 2)
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
			s.setSilent(true)
			sub := s.next(t, "subscribe").(*protocol.Subscribe)
			subs <- s.payloadsOf("subscribe")[0]
			if n > 0 {
				recovered := true
				s.send(&protocol.Subscribed{ID: sub.ID, Channel: "chat", Epoch: "e1", Offset: 12, Recovered: &recovered})
				return
			}
			s.send(&protocol.Subscribed{ID: sub.ID, Channel: "chat", Epoch: "e1", Offset: 10})
			for _, off := range []uint64{8, 9, 10, 10, 11, 12} {
				s.sendRaw(msgFrame(off, `,"ts":1`))
			}
			s.drop()
		}}
		c := dialFake(t, f, nil)
		var g got
		if _, err := c.Subscribe(t.Context(), "chat", g.handle, client.Last(5)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := g.offsets(); got != "8 9 10 11 12" {
			t.Errorf("handler got %q, want 8 9 10 11 12", got)
		}
		first, again := <-subs, <-subs
		if !strings.Contains(first, `"last":5`) || strings.Contains(first, "since") {
			t.Errorf("first subscribe %s, want last 5 without since", first)
		}
		if strings.Contains(again, "last") || !strings.Contains(again, `"since":{"epoch":"e1","offset":12}`) {
			t.Errorf("resubscribe %s, want since e1/12 without last", again)
		}
	})
}

// TestLastEmptyHistory: with nothing held, the first message is the live
// one after the reply's offset, taken without asking again.
func TestLastEmptyHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
			s.setSilent(true)
			sub := s.next(t, "subscribe").(*protocol.Subscribe)
			s.send(&protocol.Subscribed{ID: sub.ID, Channel: "chat", Epoch: "e1", Offset: 10})
			s.sendRaw(msgFrame(11, ""))
			s.sendRaw(msgFrame(12, ""))
		}}
		c := dialFake(t, f, nil)
		var g got
		if _, err := c.Subscribe(t.Context(), "chat", g.handle, client.Last(50)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := g.offsets(); got != "11 12" {
			t.Errorf("handler got %q, want 11 12", got)
		}
		if n := len(f.sessionSubscribes()); n != 1 {
			t.Errorf("client sent %d subscribes, want 1", n)
		}
	})
}

// TestLastRefusedLocally: a backlog out of range, or with Since, fails with
// bad_request before anything is sent.
func TestLastRefusedLocally(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeServer{t: t}
		c := dialFake(t, f, nil)
		for name, opts := range map[string][]client.SubscribeOption{
			"negative":   {client.Last(-1)},
			"too many":   {client.Last(client.MaxLast + 1)},
			"with since": {client.Last(5), client.Since(protocol.StreamPosition{Epoch: "e1", Offset: 3})},
		} {
			_, err := c.Subscribe(t.Context(), "chat", func(client.Message) {}, opts...)
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != protocol.CodeBadRequest {
				t.Errorf("%s: %v, want bad_request", name, err)
			}
		}
		synctest.Wait()
		if n := len(f.sessionSubscribes()); n != 0 {
			t.Errorf("client sent %d subscribes, want none", n)
		}
	})
}

// sessionSubscribes returns the subscribes received on every connection.
func (f *fakeServer) sessionSubscribes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.sessions {
		out = append(out, s.payloadsOf("subscribe")...)
	}
	return out
}

// answerHistory answers the next history request as a server holding
// offsets 1..held of chat, each with data equal to its offset, and returns
// the request.
func answerHistory(t *testing.T, s *fakeSession, held uint64, epoch string) map[string]any {
	req := s.nextExtra(t, "history")
	limit, before := uint64(100), held+1
	if v, ok := req["limit"].(float64); ok {
		limit = uint64(v)
	}
	if v, ok := req["before"].(float64); ok {
		before = uint64(v)
	}
	var msgs []string
	first := max(int64(before)-int64(limit), 1)
	for off := uint64(first); off < before; off++ {
		msgs = append(msgs, fmt.Sprintf(`{"offset":%d,"ts":%d,"from":{"client":"s_1","user":"bob"},"data":%d}`, off, 1000+off, off))
	}
	s.sendRaw(fmt.Sprintf(`{"type":"page","id":%v,"channel":"chat","epoch":%q,"offset":%d,"more":%v,"messages":[%s]}`,
		req["id"], epoch, held, first > 1, strings.Join(msgs, ",")))
	return req
}

// TestHistoryPaging pages back through 5 held messages two at a time with
// Page.Older: the requests carry limit and before, each page comes oldest
// first with its metadata, and the last one says there is no more.
func TestHistoryPaging(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reqs := make(chan map[string]any, 10)
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
			for range 3 {
				reqs <- answerHistory(t, s, 5, "e1")
			}
		}}
		c := dialFake(t, f, nil)
		var all []string
		opts := &client.HistoryOptions{Limit: 2}
		for opts != nil {
			page, err := c.History(t.Context(), "chat", opts)
			if err != nil {
				t.Fatal(err)
			}
			var offs []string
			for _, m := range page.Messages {
				offs = append(offs, fmt.Sprint(m.Offset, string(m.Data)))
				if m.Channel != "chat" || m.From.User != "bob" || m.TS.UnixMilli() != int64(1000+m.Offset) {
					t.Errorf("message %+v lacks its channel or metadata", m)
				}
			}
			all = append(all, strings.Join(offs, ","))
			if page.Epoch != "e1" || page.Offset != 5 {
				t.Errorf("page epoch %q offset %d, want e1 5", page.Epoch, page.Offset)
			}
			opts = page.Older()
		}
		if got := strings.Join(all, " | "); got != "44,55 | 22,33 | 11" {
			t.Errorf("pages %q, want 44,55 | 22,33 | 11", got)
		}
		first, second := <-reqs, <-reqs
		if first["limit"] != 2.0 || first["before"] != nil || second["before"] != 4.0 {
			t.Errorf("requests %v, %v: want limit 2, no before, then before 4", first, second)
		}
	})
}

// TestHistoryEpochChanged: a page of another epoch than the one paging
// started with fails with ErrEpochChanged.
func TestHistoryEpochChanged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
			answerHistory(t, s, 5, "e1")
			answerHistory(t, s, 5, "e2")
		}}
		c := dialFake(t, f, nil)
		page, err := c.History(t.Context(), "chat", &client.HistoryOptions{Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.History(t.Context(), "chat", page.Older()); !errors.Is(err, client.ErrEpochChanged) {
			t.Errorf("second page: %v, want ErrEpochChanged", err)
		}
	})
}

// TestHistoryAcrossReconnect: a request made while disconnected waits for
// the connection, and one whose connection dies before the answer is asked
// again on the next; a rate_limited answer is asked again after
// retry_after_ms; another error is returned with its code.
func TestHistoryAcrossReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		open := false
		f := &fakeServer{t: t,
			refuse: func(n int) bool {
				mu.Lock()
				defer mu.Unlock()
				return n > 0 && !open
			},
			script: func(n int, s *fakeSession) {
				if n == 0 {
					s.nextExtra(t, "history") // never answered
					s.drop()
					return
				}
				req := s.nextExtra(t, "history")
				s.sendRaw(fmt.Sprintf(`{"type":"error","id":%v,"code":"rate_limited","message":"slow down","retry_after_ms":300}`, req["id"]))
				answerHistory(t, s, 3, "e1")
				req = s.nextExtra(t, "history")
				s.sendRaw(fmt.Sprintf(`{"type":"error","id":%v,"code":"forbidden","message":"no"}`, req["id"]))
			}}
		c := dialFake(t, f, nil)
		type result struct {
			p   *client.Page
			err error
		}
		done := make(chan result, 1)
		go func() {
			p, err := c.History(t.Context(), "chat", nil)
			done <- result{p, err}
		}()
		synctest.Wait()
		if len(done) != 0 {
			t.Fatal("History returned while the server was unreachable")
		}
		mu.Lock()
		open = true
		mu.Unlock()
		start := time.Now()
		r := <-done
		if r.err != nil || len(r.p.Messages) != 3 {
			t.Fatalf("History after reconnect: %v, %v", r.p, r.err)
		}
		if time.Since(start) < 300*time.Millisecond {
			t.Errorf("rate-limited request answered after %v, want at least retry_after_ms", time.Since(start))
		}
		_, err := c.History(t.Context(), "chat", nil)
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeForbidden || !strings.HasPrefix(err.Error(), "herald: history chat") {
			t.Errorf("refused history: %v, want forbidden", err)
		}
	})
}

// TestHistoryRefusedLocally: a limit out of range or a bad channel fails
// without a request.
func TestHistoryRefusedLocally(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := dialFake(t, &fakeServer{t: t}, nil)
		for _, o := range []*client.HistoryOptions{{Limit: -1}, {Limit: client.MaxHistoryLimit + 1}} {
			_, err := c.History(t.Context(), "chat", o)
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != protocol.CodeBadRequest {
				t.Errorf("limit %d: %v, want bad_request", o.Limit, err)
			}
		}
		if _, err := c.History(t.Context(), "bad channel", nil); err == nil {
			t.Error("history of an invalid channel: no error")
		}
	})
}
