package client_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/client"
)

func dialClient(t *testing.T, url string, o *client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually waits up to d for cond.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// states records a client's state changes with their times.
type states struct {
	mu  sync.Mutex
	all []stateAt
	ch  chan client.StateChange
}

type stateAt struct {
	client.StateChange
	at time.Time
}

func newStates() *states { return &states{ch: make(chan client.StateChange, 1000)} }

func (s *states) record(ch client.StateChange) {
	s.mu.Lock()
	s.all = append(s.all, stateAt{ch, time.Now()})
	s.mu.Unlock()
	select {
	case s.ch <- ch:
	default:
	}
}

// await returns the next state change to st, failing after d.
func (s *states) await(t *testing.T, st client.State, d time.Duration) client.StateChange {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ch := <-s.ch:
			if ch.State == st {
				return ch
			}
		case <-timeout:
			t.Fatalf("no %v within %v", st, d)
		}
	}
}
