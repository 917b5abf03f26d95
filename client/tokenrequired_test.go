package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
	"github.com/heraldhq/herald/protocol"
)

// TestNoTokenAgainstTokenServer dials a server that verifies JWTs, with a
// hello timeout longer than the client's DialTimeout, without a token: Dial
// fails with ErrTokenRequired, wrapping the server's 4001, within the hello
// timeout plus a second, and the client does not try again.
func TestNoTokenAgainstTokenServer(t *testing.T) {
	v, err := auth.NewJWT(auth.JWTOptions{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	const hello = 800 * time.Millisecond
	var dials atomic.Int32
	n := testnode.New(t, herald.Options{Tokens: v, HelloTimeout: hello})
	n.OnUpgrade = func() { dials.Add(1) }
	n.Start()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = client.Dial(ctx, n.URL(), &client.Options{DialTimeout: 300 * time.Millisecond})
	took := time.Since(start)
	var ce *client.CloseError
	if !errors.Is(err, client.ErrTokenRequired) || !errors.As(err, &ce) || ce.Code != protocol.CloseUnauthorized {
		t.Fatalf("Dial: %v, want ErrTokenRequired wrapping close 4001", err)
	}
	if took > hello+time.Second {
		t.Errorf("Dial took %v, want at most the hello timeout plus a second", took)
	}
	if d := dials.Load(); d != 1 {
		t.Errorf("%d upgrades, want 1", d)
	}
}

// TestNoCredentialsRefusedAtUpgrade: a server that authenticates with a hook
// only and refuses anonymous connections answers the upgrade with 401; a
// client without a token stops with ErrTokenRequired wrapping the
// HandshakeError.
func TestNoCredentialsRefusedAtUpgrade(t *testing.T) {
	n := testnode.Start(t, herald.Options{Anonymous: herald.AnonymousDeny})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := client.Dial(ctx, n.URL(), nil)
	var he *client.HandshakeError
	if !errors.Is(err, client.ErrTokenRequired) || !errors.As(err, &he) || he.Status != 401 {
		t.Fatalf("Dial: %v, want ErrTokenRequired wrapping HTTP 401", err)
	}
}

// TestTokenFuncUnauthorizedStops: a token callback that returns an error
// wrapping ErrUnauthorized stops the client for good, at the first call
// (Dial fails with it at once) and at a refresh while connected (the client
// closes and reports it), and is not asked again.
func TestTokenFuncUnauthorizedStops(t *testing.T) {
	n := jwtNode(t)
	revoked := fmt.Errorf("user deleted: %w", client.ErrUnauthorized)

	k := &tokens{t: t, ttl: time.Hour, fail: func(int) error { return revoked }}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err := client.Dial(ctx, n.URL(), &client.Options{TokenFunc: k.get})
	if !errors.Is(err, client.ErrUnauthorized) || time.Since(start) > time.Second {
		t.Errorf("Dial: %v after %v, want ErrUnauthorized at once", err, time.Since(start))
	}

	k = &tokens{t: t, ttl: 3 * time.Second, fail: func(n int) error {
		if n > 0 {
			return revoked
		}
		return nil
	}}
	st := newStates()
	c := dialClient(t, n.URL(), &client.Options{TokenFunc: k.get, OnStateChange: st.record})
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client still running 5 s after its token callback said unauthorized")
	}
	if !errors.Is(c.Err(), client.ErrUnauthorized) {
		t.Errorf("Err() = %v, want ErrUnauthorized", c.Err())
	}
	if ch := st.await(t, client.StateClosed, time.Second); !errors.Is(ch.Err, client.ErrUnauthorized) {
		t.Errorf("closed with %v, want ErrUnauthorized", ch.Err)
	}
	time.Sleep(500 * time.Millisecond)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.calls != 2 {
		t.Errorf("token callback called %d times, want 2 (connect, refresh)", k.calls)
	}
}
