package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/protocol"
)

var testSecret = []byte("test-secret")

// tokens hands out JWTs for alice, valid for ttl from the time of each call,
// and remembers them.
type tokens struct {
	t   *testing.T
	ttl time.Duration
	// fail, when set, makes call n (from 0) fail with the error it returns.
	fail func(n int) error
	// same, when set, makes call n hand back the previous token.
	same func(n int) bool

	mu     sync.Mutex
	issued []string
	calls  int
}

func (k *tokens) get(ctx context.Context) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.calls
	k.calls++
	if k.fail != nil {
		if err := k.fail(n); err != nil {
			return "", err
		}
	}
	if k.same != nil && k.same(n) && len(k.issued) > 0 {
		return k.issued[len(k.issued)-1], nil
	}
	tok, err := auth.SignHS256(testSecret, "alice", nil, k.ttl)
	if err != nil {
		k.t.Error(err)
	}
	k.issued = append(k.issued, tok)
	return tok, nil
}

func (k *tokens) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.calls
}

// errorLog records what Options.OnError is given.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) add(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *errorLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

func jwtExp(t *testing.T, token string) time.Time {
	t.Helper()
	exp, ok := jwtExpiry(token)
	if !ok {
		t.Fatalf("token %q has no exp", token)
	}
	return exp
}

// TestRefreshAheadOfExpiry keeps a client on a server that closes with 4001
// when a token expires, with tokens that live 60 s, for 10 minutes: the
// client sends every new token in a refresh request at 80-90 % of the
// previous one's lifetime (at least 5 s before exp), randomly spread, each
// planned from the expiry the server confirmed, and never reconnects.
func TestRefreshAheadOfExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sessions := make(chan *fakeSession, 10)
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
			sessions <- s
			s.enforceExpiry()
		}}
		k := &tokens{t: t, ttl: time.Minute}
		var states []client.State
		var mu sync.Mutex
		var errs errorLog
		c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(&client.Options{
			TokenFunc: k.get,
			OnError:   errs.add,
			OnStateChange: func(ch client.StateChange) {
				mu.Lock()
				states = append(states, ch.State)
				mu.Unlock()
			},
		}))
		if err != nil {
			t.Fatal(err)
		}
		s := <-sessions
		time.Sleep(10 * time.Minute)
		synctest.Wait()

		refreshes, at := s.framesOf(protocol.TypeRefresh)
		if n := len(refreshes); n < 10 || n > 13 {
			t.Errorf("%d refreshes in 10 minutes of 60 s tokens, want 10-13", n)
		}
		prev := f.upgradeTokens()[0][len("Bearer "):]
		var minLead, maxLead time.Duration = time.Hour, 0
		for i, fr := range refreshes {
			tok := fr.(*protocol.Refresh).Token
			if tok == prev {
				t.Errorf("refresh %d sent the token in use", i)
			}
			lead := jwtExp(t, prev).Sub(at[i])
			within(t, fmt.Sprintf("lead of refresh %d before exp", i), lead, 5*time.Second, 12*time.Second)
			minLead, maxLead = min(minLead, lead), max(maxLead, lead)
			prev = tok
		}
		if maxLead-minLead < time.Second {
			t.Errorf("refresh leads all within [%v, %v]: not spread", minLead, maxLead)
		}
		if n := len(f.dialTimes()); n != 1 {
			t.Errorf("%d dials, want 1", n)
		}
		if e := errs.all(); len(e) != 0 {
			t.Errorf("OnError got %v", e)
		}
		if k.count() != len(refreshes)+1 {
			t.Errorf("token callback called %d times for %d refreshes", k.count(), len(refreshes))
		}
		c.Close()
		synctest.Wait() // for the last state change callback
		mu.Lock()
		defer mu.Unlock()
		if fmt.Sprint(states) != "[connecting connected closed]" {
			t.Errorf("state changes %v, want [connecting connected closed]", states)
		}
	})
}

// TestRefreshFailureRetried makes the first two refreshes fail in each of
// the ways a refresh can fail: each failure goes to OnError, the client
// tries again after a backoff delay, and the third refresh, still before
// exp, keeps the connection.
func TestRefreshFailureRetried(t *testing.T) {
	errCallback := errors.New("identity provider down")
	for _, tc := range []struct {
		name    string
		refuse  protocol.Code // the server's answer to the first two refreshes
		fail    bool          // the token callback fails twice
		same    bool          // the token callback returns the old token twice
		wantErr func(error) bool
	}{
		{name: "unauthorized", refuse: protocol.CodeUnauthorized, wantErr: isCode(protocol.CodeUnauthorized)},
		{name: "forbidden", refuse: protocol.CodeForbidden, wantErr: isCode(protocol.CodeForbidden)},
		{name: "callback fails", fail: true, wantErr: func(err error) bool { return errors.Is(err, errCallback) }},
		{name: "callback returns the same token", same: true, wantErr: func(err error) bool { return err != nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sessions := make(chan *fakeSession, 10)
				f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
					sessions <- s
					s.enforceExpiry()
				}}
				refused := 0
				if tc.refuse != "" {
					f.refresh = func(n int, req *protocol.Refresh) protocol.Frame {
						if refused < 2 {
							refused++
							return &protocol.Error{ID: req.ID, Code: tc.refuse, Message: "no"}
						}
						return &protocol.Refreshed{ID: req.ID, ExpiresAt: jwtExp(t, req.Token).Unix()}
					}
				}
				k := &tokens{t: t, ttl: time.Minute,
					fail: func(n int) error {
						if tc.fail && (n == 1 || n == 2) {
							return errCallback
						}
						return nil
					},
					same: func(n int) bool { return tc.same && (n == 1 || n == 2) },
				}
				var errs errorLog
				c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(&client.Options{
					TokenFunc: k.get,
					OnError:   errs.add,
				}))
				if err != nil {
					t.Fatal(err)
				}
				s := <-sessions
				first := jwtExp(t, f.upgradeTokens()[0][len("Bearer "):])
				time.Sleep(70 * time.Second) // past the first token's exp
				synctest.Wait()

				got := errs.all()
				if len(got) != 2 {
					t.Fatalf("OnError got %d errors (%v), want 2", len(got), got)
				}
				for _, err := range got {
					if !tc.wantErr(err) {
						t.Errorf("OnError got %v", err)
					}
				}
				if s.expiry().Equal(first) {
					t.Errorf("the server still holds the first token")
				}
				if n := len(f.dialTimes()); n != 1 {
					t.Errorf("%d dials, want 1: the connection was lost", n)
				}
				if k.count() != 4 {
					t.Errorf("token callback called %d times, want 4", k.count())
				}
				if tc.refuse != "" {
					// Backoff: 250-500 ms, then 500 ms-1 s.
					_, at := s.framesOf(protocol.TypeRefresh)
					within(t, "wait after the first refusal", at[1].Sub(at[0]), 250*ms, 500*ms)
					within(t, "wait after the second refusal", at[2].Sub(at[1]), 500*ms, time.Second)
				}
				c.Close()
			})
		})
	}
}

func isCode(code protocol.Code) func(error) bool {
	return func(err error) bool {
		var pe *protocol.Error
		return errors.As(err, &pe) && pe.Code == code
	}
}

// TestRefreshNeverConfirmed refuses every refresh: the client keeps trying,
// more often as exp nears, until the server closes with 4001 at exp; then it
// reconnects with a new token from the callback.
func TestRefreshNeverConfirmed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) { s.enforceExpiry() }}
		f.refresh = func(n int, req *protocol.Refresh) protocol.Frame {
			if n == 0 {
				return &protocol.Error{ID: req.ID, Code: protocol.CodeUnauthorized, Message: "no"}
			}
			return &protocol.Refreshed{ID: req.ID, ExpiresAt: jwtExp(t, req.Token).Unix()}
		}
		k := &tokens{t: t, ttl: time.Minute}
		var errs errorLog
		c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(&client.Options{TokenFunc: k.get, OnError: errs.add}))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(90 * time.Second)
		synctest.Wait()
		if n := len(f.dialTimes()); n != 2 {
			t.Errorf("%d dials, want 2", n)
		}
		up := f.upgradeTokens()
		if len(up) != 2 || up[0] == up[1] {
			t.Errorf("upgrade tokens %v: want a new token after 4001", up)
		}
		// Retries back off, but never past half of the time left: about
		// log2(lead/floor) more as exp nears.
		if n := len(errs.all()); n < 3 || n > 15 {
			t.Errorf("%d refusals reported in 6-12 s before exp, want 3-15", n)
		}
		c.Close()
	})
}

// TestRefreshedTokenUsedToReconnect drops the connection after a refresh:
// the client reconnects with the refreshed token, without asking for
// another, and refreshes it again ahead of its expiry.
func TestRefreshedTokenUsedToReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sessions := make(chan *fakeSession, 10)
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
			sessions <- s
			if n == 0 {
				time.Sleep(58 * time.Second) // after the refresh, before the first exp
				s.drop()
				return
			}
			s.enforceExpiry()
		}}
		initial, err := auth.SignHS256(testSecret, "alice", nil, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		k := &tokens{t: t, ttl: time.Minute}
		c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(&client.Options{Token: initial, TokenFunc: k.get}))
		if err != nil {
			t.Fatal(err)
		}
		first := <-sessions
		second := <-sessions
		refreshes, _ := first.framesOf(protocol.TypeRefresh)
		if len(refreshes) != 1 {
			t.Fatalf("%d refreshes on the first connection, want 1", len(refreshes))
		}
		refreshed := refreshes[0].(*protocol.Refresh).Token
		if k.count() != 1 {
			t.Errorf("token callback called %d times before the reconnect, want 1", k.count())
		}
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		up := f.upgradeTokens()
		if up[0] != "Bearer "+initial || up[1] != "Bearer "+refreshed {
			t.Errorf("upgrades carried %q, want the initial token and then the refreshed one", up)
		}
		if n := len(f.dialTimes()); n != 2 {
			t.Errorf("%d dials, want 2", n)
		}
		if again, _ := second.framesOf(protocol.TypeRefresh); len(again) < 4 {
			t.Errorf("%d refreshes on the second connection in 5 minutes, want 4 or more", len(again))
		}
		c.Close()
	})
}

// TestExpiredTokenReplacedBeforeReconnect keeps the client away from the
// server until its token expired: the next upgrade carries a new token from
// the callback, never the expired one.
func TestExpiredTokenReplacedBeforeReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		f := &fakeServer{t: t,
			script: func(n int, s *fakeSession) {
				if n == 0 {
					time.Sleep(time.Second)
					s.drop()
				}
			},
			refuse: func(n int) bool { return n > 0 && time.Since(start) < 2*time.Minute },
		}
		initial, err := auth.SignHS256(testSecret, "alice", nil, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		k := &tokens{t: t, ttl: 10 * time.Minute}
		c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(&client.Options{Token: initial, TokenFunc: k.get}))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Minute)
		synctest.Wait()
		up := f.upgradeTokens()
		if len(up) != 2 || up[1] == "Bearer "+initial {
			t.Fatalf("upgrades carried %q, want the initial token and then a new one", up)
		}
		if k.count() != 1 {
			t.Errorf("token callback called %d times, want 1 (once the token expired)", k.count())
		}
		c.Close()
	})
}

// TestStaticJWTExpires gives a JWT and no callback: the client sends no
// refresh, and the server's 4001 at exp stops it with that close code.
func TestStaticJWTExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sessions := make(chan *fakeSession, 1)
		f := &fakeServer{t: t, script: func(n int, s *fakeSession) {
			sessions <- s
			s.enforceExpiry()
		}}
		tok, err := auth.SignHS256(testSecret, "alice", nil, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c, err := client.Dial(t.Context(), "ws://herald.test/ws", f.options(&client.Options{Token: tok}))
		if err != nil {
			t.Fatal(err)
		}
		s := <-sessions
		<-c.Done()
		within(t, "time until the client stopped", time.Since(start), 59*time.Second, time.Minute)
		var ce *client.CloseError
		if !errors.As(c.Err(), &ce) || ce.Code != protocol.CloseUnauthorized {
			t.Errorf("Err() = %v, want close 4001", c.Err())
		}
		if r, _ := s.framesOf(protocol.TypeRefresh); len(r) != 0 {
			t.Errorf("client without a token callback sent %d refreshes", len(r))
		}
		c.Close()
	})
}
