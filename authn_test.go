package herald_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/internal/heraldtest"
)

var testSecret = []byte("test-secret")

func token(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	if _, ok := c["exp"]; !ok {
		c["exp"] = time.Now().Add(time.Hour).Unix()
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func jwtServer(t *testing.T, o herald.Options) *testServer {
	t.Helper()
	v, err := auth.NewJWT(auth.JWTOptions{Secret: testSecret, Audience: "herald"})
	if err != nil {
		t.Fatal(err)
	}
	o.Tokens = v
	return startServer(t, &o)
}

// bearer dials with tok in the Authorization header.
func bearer(tok string) *heraldtest.DialOptions {
	return &heraldtest.DialOptions{Header: http.Header{"Authorization": {"Bearer " + tok}}}
}

// cookie dials with a session cookie.
func cookie(session string) *heraldtest.DialOptions {
	return &heraldtest.DialOptions{Header: http.Header{"Cookie": {"session=" + session}}}
}

// refused checks that the server refuses the upgrade with HTTP status.
func refused(t *testing.T, url string, o *heraldtest.DialOptions, status int) {
	t.Helper()
	c, err := heraldtest.Dial(t.Context(), url, o)
	if err == nil {
		c.Close()
	}
	var se ws.StatusError
	if !errors.As(err, &se) || int(se) != status {
		t.Fatalf("upgrade: %v, want HTTP %d", err, status)
	}
}

func TestTokenAtUpgrade(t *testing.T) {
	srv := jwtServer(t, herald.Options{})
	good := token(t, jwt.MapClaims{"sub": "alice", "aud": "herald"})

	t.Run("header", func(t *testing.T) {
		c := heraldtest.MustDial(t, srv.url, bearer(good))
		if w := c.Expect(t, "welcome").Fields(); w["user"] != "alice" {
			t.Fatalf("welcome = %v", w)
		}
	})
	t.Run("query parameter", func(t *testing.T) {
		c := heraldtest.MustDial(t, srv.url+"?token="+good, nil)
		if w := c.Expect(t, "welcome").Fields(); w["user"] != "alice" {
			t.Fatalf("welcome = %v", w)
		}
	})
	bad := map[string]string{
		"bad signature":  strings.TrimSuffix(good, good[len(good)-4:]) + "AAAA",
		"expired":        token(t, jwt.MapClaims{"sub": "alice", "aud": "herald", "exp": time.Now().Add(-time.Minute).Unix()}),
		"not yet valid":  token(t, jwt.MapClaims{"sub": "alice", "aud": "herald", "nbf": time.Now().Add(time.Hour).Unix()}),
		"wrong audience": token(t, jwt.MapClaims{"sub": "alice", "aud": "other"}),
	}
	for name, tok := range bad {
		t.Run(name, func(t *testing.T) {
			refused(t, srv.url, bearer(tok), 401)
		})
	}
}

func TestTokenInHello(t *testing.T) {
	srv := jwtServer(t, herald.Options{HelloTimeout: 300 * time.Millisecond})
	good := token(t, jwt.MapClaims{"sub": "bob", "aud": "herald"})

	t.Run("welcome answers hello", func(t *testing.T) {
		c := heraldtest.MustDial(t, srv.url, nil)
		c.Send(t, `{"type":"subscribe","id":1,"channel":"x"}`)
		c.ExpectError(t, "unauthorized", 1)
		c.Send(t, fmt.Sprintf(`{"type":"hello","id":2,"token":%q,"client":"test/1"}`, good))
		if w := c.Expect(t, "welcome").Fields(); w["user"] != "bob" || w["id"] != 2.0 {
			t.Fatalf("welcome = %v", w)
		}
		c.Send(t, `{"type":"subscribe","id":3,"channel":"x"}`)
		c.Expect(t, "subscribed")
	})
	t.Run("no hello closes 4001", func(t *testing.T) {
		c := heraldtest.MustDial(t, srv.url, nil)
		start := time.Now()
		if code := c.ExpectClose(t, 5*time.Second); code != 4001 {
			t.Fatalf("close %d, want 4001", code)
		}
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Fatalf("closed after %v, before hello_timeout", d)
		}
	})
	t.Run("invalid hello token closes 4001", func(t *testing.T) {
		c := heraldtest.MustDial(t, srv.url, nil)
		c.Send(t, `{"type":"hello","id":1,"token":"nope"}`)
		if code := c.ExpectClose(t, 5*time.Second); code != 4001 {
			t.Fatalf("close %d, want 4001", code)
		}
	})
}

func TestAnonymousCanAuthenticateLater(t *testing.T) {
	srv := jwtServer(t, herald.Options{Anonymous: herald.AnonymousAllow})
	c := heraldtest.MustDial(t, srv.url, nil)
	if w := c.Expect(t, "welcome").Fields(); w["user"] != nil {
		t.Fatalf("anonymous welcome = %v", w)
	}
	c.Send(t, fmt.Sprintf(`{"type":"hello","id":7,"token":%q}`, token(t, jwt.MapClaims{"sub": "carol", "aud": "herald"})))
	if w := c.Expect(t, "welcome").Fields(); w["user"] != "carol" || w["id"] != 7.0 {
		t.Fatalf("welcome = %v", w)
	}
	c.Send(t, `{"type":"hello","id":8,"token":"x"}`)
	c.ExpectError(t, "bad_request", 8)
}

func TestRequiredCredentialsWithoutTokens(t *testing.T) {
	srv := startServer(t, &herald.Options{Anonymous: herald.AnonymousDeny})
	refused(t, srv.url, nil, 401)
}

func TestExpiryAndRefresh(t *testing.T) {
	srv := jwtServer(t, herald.Options{})
	short := func(user string) string {
		return token(t, jwt.MapClaims{"sub": user, "aud": "herald", "exp": time.Now().Add(2 * time.Second).Unix()})
	}
	t.Run("expiry closes 4001", func(t *testing.T) {
		t.Parallel()
		c := heraldtest.DialWelcome(t, srv.url, bearer(short("dave")))
		if code := c.ExpectClose(t, 5*time.Second); code != 4001 {
			t.Fatalf("close %d, want 4001", code)
		}
	})
	t.Run("refresh extends the connection", func(t *testing.T) {
		t.Parallel()
		c := heraldtest.DialWelcome(t, srv.url, bearer(short("erin")))
		later := time.Now().Add(time.Hour).Unix()
		c.Send(t, fmt.Sprintf(`{"type":"refresh","id":1,"token":%q}`, token(t, jwt.MapClaims{"sub": "erin", "aud": "herald", "exp": later})))
		if r := c.Expect(t, "refreshed").Fields(); r["id"] != 1.0 || r["expires_at"] != float64(later) {
			t.Fatalf("refreshed = %v", r)
		}
		c.Send(t, fmt.Sprintf(`{"type":"refresh","id":2,"token":%q}`, token(t, jwt.MapClaims{"sub": "mallory", "aud": "herald"})))
		c.ExpectError(t, "forbidden", 2)
		c.Send(t, `{"type":"refresh","id":3,"token":"garbage"}`)
		c.ExpectError(t, "unauthorized", 3)
		time.Sleep(3 * time.Second) // past the first token's expiry
		c.Send(t, `{"type":"ping","id":4}`)
		c.Expect(t, "pong")
	})
}

func TestChannelPermissions(t *testing.T) {
	srv := jwtServer(t, herald.Options{
		Anonymous: herald.AnonymousAllow,
		Namespaces: map[string]herald.NamespaceOptions{
			"news":  {Publish: herald.AccessNone},
			"users": {Subscribe: herald.AccessUsers, Publish: herald.AccessUsers},
		},
		Authorize: func(id auth.Identity, a herald.Action, ch string) bool { return ch != "chat:secret" },
	})
	limited := heraldtest.DialWelcome(t, srv.url, bearer(token(t, jwt.MapClaims{"sub": "frank", "aud": "herald", "channels": []string{"chat:*"}})))
	limited.Send(t, `{"type":"subscribe","id":1,"channel":"chat:lobby"}`)
	limited.Expect(t, "subscribed")
	limited.Send(t, `{"type":"subscribe","id":2,"channel":"other"}`)
	limited.ExpectError(t, "forbidden", 2)
	limited.Send(t, `{"type":"publish","id":3,"channel":"other","data":1}`)
	limited.ExpectError(t, "forbidden", 3)
	limited.Send(t, `{"type":"subscribe","id":4,"channel":"chat:secret"}`)
	limited.ExpectError(t, "forbidden", 4) // the Authorize hook

	anon := heraldtest.DialWelcome(t, srv.url, nil)
	anon.Send(t, `{"type":"publish","id":1,"channel":"news:today","data":1}`)
	anon.ExpectError(t, "forbidden", 1)
	anon.Send(t, `{"type":"subscribe","id":2,"channel":"news:today"}`)
	anon.Expect(t, "subscribed")
	anon.Send(t, `{"type":"subscribe","id":3,"channel":"users:x"}`)
	anon.ExpectError(t, "unauthorized", 3)
	anon.Send(t, `{"type":"publish","id":4,"channel":"users:x","data":1}`)
	anon.ExpectError(t, "unauthorized", 4)
}

func TestAuthenticateHook(t *testing.T) {
	srv := startServer(t, &herald.Options{
		Authenticate: func(r *http.Request) (*auth.Identity, error) {
			c, err := r.Cookie("session")
			switch {
			case err != nil:
				return nil, nil
			case c.Value != "valid":
				return nil, errors.New("unknown session")
			}
			return &auth.Identity{User: "gina"}, nil
		},
	})
	c := heraldtest.MustDial(t, srv.url, cookie("valid"))
	if w := c.Expect(t, "welcome").Fields(); w["user"] != "gina" {
		t.Fatalf("welcome = %v", w)
	}
	refused(t, srv.url, cookie("stale"), 401)
	refused(t, srv.url, nil, 401) // no credentials, no anonymous
}

func TestRateLimit(t *testing.T) {
	srv := startServer(t, &herald.Options{Rate: 2, Burst: 3})
	c := heraldtest.DialWelcome(t, srv.url, nil)
	for i := range 3 {
		c.Send(t, fmt.Sprintf(`{"type":"ping","id":%d}`, i+1))
		c.Expect(t, "pong")
	}
	c.Send(t, `{"type":"ping","id":4}`)
	e := c.Expect(t, "error").Fields()
	if e["code"] != "rate_limited" {
		t.Fatalf("error = %v", e)
	}
	wait, _ := e["retry_after_ms"].(float64)
	if wait <= 0 || wait > 500 {
		t.Fatalf("retry_after_ms = %v, want (0, 500]", e["retry_after_ms"])
	}
	time.Sleep(time.Duration(wait) * time.Millisecond)
	c.Send(t, `{"type":"ping","id":5}`)
	c.Expect(t, "pong")
}

func TestConnectionsPerAddress(t *testing.T) {
	srv := startServer(t, &herald.Options{MaxConnectionsPerAddr: 2})
	first := heraldtest.DialWelcome(t, srv.url, nil)
	heraldtest.DialWelcome(t, srv.url, nil)
	refused(t, srv.url, nil, 503)
	first.Close()
	waitFor(t, "a slot to free", func() bool { return srv.Connections() == 1 })
	heraldtest.DialWelcome(t, srv.url, nil)
}

func TestTLS(t *testing.T) {
	srv := herald.New(nil)
	hs := httptest.NewTLSServer(srv)
	defer func() { hs.Close(); srv.Close() }()
	tlsConfig := &tls.Config{RootCAs: hs.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	c := heraldtest.DialWelcome(t, "wss"+strings.TrimPrefix(hs.URL, "https")+"/ws", &heraldtest.DialOptions{TLSConfig: tlsConfig})
	c.Send(t, `{"type":"ping","id":1}`)
	c.Expect(t, "pong")
}

// A token that says "never" with a far-future exp (9999-12-31, common in
// practice) is a token without expiry, not one that expired at once.
func TestFarFutureExpiry(t *testing.T) {
	srv := jwtServer(t, herald.Options{})
	never := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	c := heraldtest.DialWelcome(t, srv.url, bearer(token(t, jwt.MapClaims{"sub": "ivy", "aud": "herald", "exp": never})))
	time.Sleep(200 * time.Millisecond) // the scheduler closed such a connection at once
	c.Send(t, `{"type":"ping","id":1}`)
	c.Expect(t, "pong")
	c.Send(t, fmt.Sprintf(`{"type":"refresh","id":2,"token":%q}`, token(t, jwt.MapClaims{"sub": "ivy", "aud": "herald", "exp": never})))
	c.Expect(t, "refreshed")
	time.Sleep(200 * time.Millisecond)
	c.Send(t, `{"type":"ping","id":3}`)
	c.Expect(t, "pong")
}

// A panic in the Authenticate hook refuses that upgrade with 500 and frees
// its connection slot: with room for one connection, the next one gets in.
func TestAuthenticateHookPanic(t *testing.T) {
	srv := startServer(t, &herald.Options{
		MaxConnections: 1,
		Authenticate: func(r *http.Request) (*auth.Identity, error) {
			if r.Header.Get("X-Boom") != "" {
				panic("hook bug")
			}
			return &auth.Identity{User: "hana"}, nil
		},
	})
	for range 3 {
		refused(t, srv.url, &heraldtest.DialOptions{Header: http.Header{"X-Boom": {"1"}}}, 500)
	}
	if n := srv.Connections(); n != 0 {
		t.Fatalf("%d connections counted after refused upgrades, want 0", n)
	}
	c := heraldtest.MustDial(t, srv.url, nil)
	c.Expect(t, "welcome")
}

// A refresh to a token whose channels claim is narrower ends the
// subscriptions it no longer allows, with an unsubscribed frame that says
// why, and keeps the others.
func TestRefreshNarrowsSubscriptions(t *testing.T) {
	srv := jwtServer(t, herald.Options{})
	wide := token(t, jwt.MapClaims{"sub": "jo", "aud": "herald", "channels": []string{"chat:*", "news"}})
	c := heraldtest.DialWelcome(t, srv.url, bearer(wide))
	c.Subscribe(t, 1, "chat:lobby", nil)
	c.Subscribe(t, 2, "news", nil)
	narrow := token(t, jwt.MapClaims{"sub": "jo", "aud": "herald", "channels": []string{"news"}})
	c.Send(t, fmt.Sprintf(`{"type":"refresh","id":3,"token":%q}`, narrow))
	u := c.Expect(t, "unsubscribed").Fields()
	if u["channel"] != "chat:lobby" || u["id"] != nil || u["reason"] == nil || u["reason"] == "" {
		t.Fatalf("unsubscribed = %v, want chat:lobby without id, with a reason", u)
	}
	c.Expect(t, "refreshed")
	pub := heraldtest.DialWelcome(t, srv.url, bearer(wide))
	pub.Send(t, `{"type":"publish","id":1,"channel":"chat:lobby","data":"gone"}`)
	pub.Expect(t, "published")
	pub.Send(t, `{"type":"publish","id":2,"channel":"news","data":"kept"}`)
	pub.Expect(t, "published")
	if m := c.Expect(t, "message").Fields(); m["channel"] != "news" {
		t.Fatalf("message = %v, want only news", m)
	}
	c.Send(t, `{"type":"subscribe","id":4,"channel":"chat:lobby"}`)
	c.ExpectError(t, "forbidden", 4)
}
