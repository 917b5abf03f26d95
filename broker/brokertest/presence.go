package brokertest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker"
)

// The presence cases, for brokers that implement broker.Presence: members
// and their counts, joins and leaves announced within the bound and only
// once, and WatchPresence's guards.

// presenceHarness is a running broker with its joins and leaves recorded.
type presenceHarness struct {
	*harness
	p      broker.Presence
	events chan broker.PresenceEvent
}

func startPresence(t *testing.T, newBroker Factory) *presenceHarness {
	t.Helper()
	h := start(t, newBroker, broker.HistoryOptions{})
	p, ok := h.b.(broker.Presence)
	if !ok {
		t.Skipf("%T does not implement broker.Presence", h.b)
	}
	ph := &presenceHarness{harness: h, p: p, events: make(chan broker.PresenceEvent, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.WatchPresence(ctx, func(ev broker.PresenceEvent) { ph.events <- ev }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) && !errors.Is(err, broker.ErrClosed) {
			t.Errorf("WatchPresence returned %v after its context ended", err)
		}
	})
	ph.waitWatching()
	return ph
}

// waitWatching joins and leaves a probe channel until an event is
// delivered: WatchPresence has no readiness signal either.
func (h *presenceHarness) waitWatching() {
	h.t.Helper()
	probe := h.channel("presence-probe")
	h.subscribe(probe)
	m := broker.Member{Client: "s_probe"}
	deadline := time.Now().Add(waitTimeout)
	for {
		h.join(probe, m, 1)
		select {
		case <-h.events:
			h.leave(probe, m, 1)
			select {
			case <-h.events:
			case <-time.After(waitTimeout):
				h.t.Fatal("probe leave not announced")
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
		h.leave(probe, m, 0)
		if time.Now().After(deadline) {
			h.t.Fatalf("no presence event delivered within %v of WatchPresence", waitTimeout)
		}
	}
}

func (h *presenceHarness) join(ch string, m broker.Member, announce int) {
	h.t.Helper()
	if err := h.p.Join(context.Background(), ch, m, announce); err != nil {
		h.t.Fatalf("Join(%q, %v): %v", ch, m, err)
	}
}

func (h *presenceHarness) leave(ch string, m broker.Member, announce int) {
	h.t.Helper()
	if err := h.p.Leave(context.Background(), ch, m, announce); err != nil {
		h.t.Fatalf("Leave(%q, %v): %v", ch, m, err)
	}
}

func (h *presenceHarness) members(ch string, limit int) broker.PresenceState {
	h.t.Helper()
	st, err := h.p.Members(context.Background(), ch, limit)
	if err != nil {
		h.t.Fatalf("Members(%q): %v", ch, err)
	}
	return st
}

// next returns the next announced event, which must be want.
func (h *presenceHarness) next(want broker.PresenceEvent) {
	h.t.Helper()
	select {
	case ev := <-h.events:
		if ev != want {
			h.t.Fatalf("announced %+v, want %+v", ev, want)
		}
	case <-time.After(waitTimeout):
		h.t.Fatalf("%+v not announced within %v", want, waitTimeout)
	}
}

func sortedMembers(ms []broker.Member) []broker.Member {
	ms = slices.Clone(ms)
	slices.SortFunc(ms, func(a, b broker.Member) int { return strings.Compare(a.Client, b.Client) })
	return ms
}

func testPresenceMembers(t *testing.T, newBroker Factory) {
	h := startPresence(t, newBroker)
	ch, other := h.channel("presence"), h.channel("presence-other")
	a1 := broker.Member{Client: "s_1", User: "alice"}
	a2 := broker.Member{Client: "s_2", User: "alice"}
	bob := broker.Member{Client: "s_3", User: "bob"}
	anon := broker.Member{Client: "s_4"}
	if st := h.members(ch, 10); st.Clients != 0 || st.Users != 0 || len(st.Members) != 0 {
		t.Fatalf("empty channel: %+v, want no member", st)
	}
	for _, m := range []broker.Member{a1, a2, bob, anon, a1} {
		h.join(ch, m, 0)
	}
	h.join(other, bob, 0)
	st := h.members(ch, 10)
	if st.Clients != 4 || st.Users != 2 {
		t.Errorf("counts %d clients, %d users; want 4 and 2", st.Clients, st.Users)
	}
	if got, want := sortedMembers(st.Members), []broker.Member{a1, a2, bob, anon}; !slices.Equal(got, want) {
		t.Errorf("members %v, want %v", got, want)
	}
	if st := h.members(ch, 2); st.Clients != 4 || st.Users != 2 || len(st.Members) != 2 {
		t.Errorf("limit 2: %+v, want complete counts and 2 members", st)
	}
	if st := h.members(ch, 0); st.Clients != 4 || len(st.Members) != 0 {
		t.Errorf("limit 0: %+v, want counts only", st)
	}
	h.leave(ch, broker.Member{Client: a1.Client}, 0) // the client alone identifies it
	h.leave(ch, broker.Member{Client: "s_unknown"}, 0)
	st = h.members(ch, 10)
	if got, want := sortedMembers(st.Members), []broker.Member{a2, bob, anon}; st.Clients != 3 || st.Users != 2 || !slices.Equal(got, want) {
		t.Errorf("after a leave: %+v, want %v", st, want)
	}
	if st := h.members(other, 10); st.Clients != 1 || !slices.Equal(st.Members, []broker.Member{bob}) {
		t.Errorf("other channel: %+v, want bob alone", st)
	}
}

func testPresenceEvents(t *testing.T, newBroker Factory) {
	h := startPresence(t, newBroker)
	ch := h.channel("events")
	h.subscribe(ch)
	alice := broker.Member{Client: "s_a", User: "alice"}
	bob := broker.Member{Client: "s_b", User: "bob"}
	anon := broker.Member{Client: "s_c"}

	h.join(ch, alice, 2)
	h.next(broker.PresenceEvent{Channel: ch, Member: alice})
	h.join(ch, alice, 2) // already a member: no second join
	h.join(ch, anon, 0)  // announce 0: never
	h.join(ch, bob, 2)   // 3 members > 2: not announced
	h.leave(ch, anon, 2) // 3 members with it > 2: not announced
	h.leave(ch, broker.Member{Client: bob.Client}, 2)
	h.next(broker.PresenceEvent{Channel: ch, Member: bob, Left: true}) // with its user
	h.leave(ch, bob, 2)                                                // no longer a member
	h.leave(ch, alice, 2)
	h.next(broker.PresenceEvent{Channel: ch, Member: alice, Left: true})
	select {
	case ev := <-h.events:
		t.Errorf("unexpected %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
}

func testPresenceGuards(t *testing.T, newBroker Factory) {
	h := startPresence(t, newBroker)
	if err := h.p.WatchPresence(context.Background(), func(broker.PresenceEvent) {}); !errors.Is(err, broker.ErrRunning) {
		t.Errorf("second WatchPresence: %v, want ErrRunning", err)
	}
	if err := h.p.WatchPresence(context.Background(), nil); !errors.Is(err, broker.ErrNoDeliver) {
		t.Errorf("WatchPresence(nil): %v, want ErrNoDeliver", err)
	}
}
