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

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func refusedWith(t *testing.T, err error, status int) {
	t.Helper()
	var se ws.StatusError
	if !errors.As(err, &se) || int(se) != status {
		t.Fatalf("upgrade: %v, want HTTP %d", err, status)
	}
}

func TestTokenAtUpgrade(t *testing.T) {
	srv := jwtServer(t, herald.Options{})
	good := token(t, jwt.MapClaims{"sub": "alice", "aud": "herald"})

	t.Run("header", func(t *testing.T) {
		c, err := dialHeader(t, srv.url, bearer(good))
		if err != nil {
			t.Fatal(err)
		}
		if w := c.expect("welcome"); w["user"] != "alice" {
			t.Fatalf("welcome = %v", w)
		}
	})
	t.Run("query parameter", func(t *testing.T) {
		c := dial(t, srv.url+"?token="+good)
		if w := c.expect("welcome"); w["user"] != "alice" {
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
			_, err := dialHeader(t, srv.url, bearer(tok))
			refusedWith(t, err, 401)
		})
	}
}

func TestTokenInHello(t *testing.T) {
	srv := jwtServer(t, herald.Options{HelloTimeout: 300 * time.Millisecond})
	good := token(t, jwt.MapClaims{"sub": "bob", "aud": "herald"})

	t.Run("welcome answers hello", func(t *testing.T) {
		c := dial(t, srv.url)
		c.send(`{"type":"subscribe","id":1,"channel":"x"}`)
		c.expectError("unauthorized", 1)
		c.send(fmt.Sprintf(`{"type":"hello","id":2,"token":%q,"client":"test/1"}`, good))
		if w := c.expect("welcome"); w["user"] != "bob" || w["id"] != 2.0 {
			t.Fatalf("welcome = %v", w)
		}
		c.send(`{"type":"subscribe","id":3,"channel":"x"}`)
		c.expect("subscribed")
	})
	t.Run("no hello closes 4001", func(t *testing.T) {
		c := dial(t, srv.url)
		start := time.Now()
		if code := c.expectClose(5 * time.Second); code != 4001 {
			t.Fatalf("close %d, want 4001", code)
		}
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Fatalf("closed after %v, before hello_timeout", d)
		}
	})
	t.Run("invalid hello token closes 4001", func(t *testing.T) {
		c := dial(t, srv.url)
		c.send(`{"type":"hello","id":1,"token":"nope"}`)
		if code := c.expectClose(5 * time.Second); code != 4001 {
			t.Fatalf("close %d, want 4001", code)
		}
	})
}

func TestAnonymousCanAuthenticateLater(t *testing.T) {
	srv := jwtServer(t, herald.Options{Anonymous: herald.AnonymousAllow})
	c := dial(t, srv.url)
	if w := c.expect("welcome"); w["user"] != nil {
		t.Fatalf("anonymous welcome = %v", w)
	}
	c.send(fmt.Sprintf(`{"type":"hello","id":7,"token":%q}`, token(t, jwt.MapClaims{"sub": "carol", "aud": "herald"})))
	if w := c.expect("welcome"); w["user"] != "carol" || w["id"] != 7.0 {
		t.Fatalf("welcome = %v", w)
	}
	c.send(`{"type":"hello","id":8,"token":"x"}`)
	c.expectError("bad_request", 8)
}

func TestRequiredCredentialsWithoutTokens(t *testing.T) {
	srv := startServer(t, &herald.Options{Anonymous: herald.AnonymousDeny})
	_, err := dialHeader(t, srv.url, nil)
	refusedWith(t, err, 401)
}

func TestExpiryAndRefresh(t *testing.T) {
	srv := jwtServer(t, herald.Options{})
	short := func(user string) string {
		return token(t, jwt.MapClaims{"sub": user, "aud": "herald", "exp": time.Now().Add(2 * time.Second).Unix()})
	}
	t.Run("expiry closes 4001", func(t *testing.T) {
		t.Parallel()
		c, err := dialHeader(t, srv.url, bearer(short("dave")))
		if err != nil {
			t.Fatal(err)
		}
		c.expect("welcome")
		if code := c.expectClose(5 * time.Second); code != 4001 {
			t.Fatalf("close %d, want 4001", code)
		}
	})
	t.Run("refresh extends the connection", func(t *testing.T) {
		t.Parallel()
		c, err := dialHeader(t, srv.url, bearer(short("erin")))
		if err != nil {
			t.Fatal(err)
		}
		c.expect("welcome")
		later := time.Now().Add(time.Hour).Unix()
		c.send(fmt.Sprintf(`{"type":"refresh","id":1,"token":%q}`, token(t, jwt.MapClaims{"sub": "erin", "aud": "herald", "exp": later})))
		if r := c.expect("refreshed"); r["id"] != 1.0 || r["expires_at"] != float64(later) {
			t.Fatalf("refreshed = %v", r)
		}
		c.send(fmt.Sprintf(`{"type":"refresh","id":2,"token":%q}`, token(t, jwt.MapClaims{"sub": "mallory", "aud": "herald"})))
		c.expectError("forbidden", 2)
		c.send(`{"type":"refresh","id":3,"token":"garbage"}`)
		c.expectError("unauthorized", 3)
		time.Sleep(3 * time.Second) // past the first token's expiry
		c.send(`{"type":"ping","id":4}`)
		c.expect("pong")
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
	limited, err := dialHeader(t, srv.url, bearer(token(t, jwt.MapClaims{"sub": "frank", "aud": "herald", "channels": []string{"chat:*"}})))
	if err != nil {
		t.Fatal(err)
	}
	limited.expect("welcome")
	limited.send(`{"type":"subscribe","id":1,"channel":"chat:lobby"}`)
	limited.expect("subscribed")
	limited.send(`{"type":"subscribe","id":2,"channel":"other"}`)
	limited.expectError("forbidden", 2)
	limited.send(`{"type":"publish","id":3,"channel":"other","data":1}`)
	limited.expectError("forbidden", 3)
	limited.send(`{"type":"subscribe","id":4,"channel":"chat:secret"}`)
	limited.expectError("forbidden", 4) // the Authorize hook

	anon := dialWelcome(t, srv.url)
	anon.send(`{"type":"publish","id":1,"channel":"news:today","data":1}`)
	anon.expectError("forbidden", 1)
	anon.send(`{"type":"subscribe","id":2,"channel":"news:today"}`)
	anon.expect("subscribed")
	anon.send(`{"type":"subscribe","id":3,"channel":"users:x"}`)
	anon.expectError("unauthorized", 3)
	anon.send(`{"type":"publish","id":4,"channel":"users:x","data":1}`)
	anon.expectError("unauthorized", 4)
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
	c, err := dialHeader(t, srv.url, http.Header{"Cookie": {"session=valid"}})
	if err != nil {
		t.Fatal(err)
	}
	if w := c.expect("welcome"); w["user"] != "gina" {
		t.Fatalf("welcome = %v", w)
	}
	_, err = dialHeader(t, srv.url, http.Header{"Cookie": {"session=stale"}})
	refusedWith(t, err, 401)
	_, err = dialHeader(t, srv.url, nil) // no credentials, no anonymous
	refusedWith(t, err, 401)
}

func TestRateLimit(t *testing.T) {
	srv := startServer(t, &herald.Options{Rate: 2, Burst: 3})
	c := dialWelcome(t, srv.url)
	for i := range 3 {
		c.send(fmt.Sprintf(`{"type":"ping","id":%d}`, i+1))
		c.expect("pong")
	}
	c.send(`{"type":"ping","id":4}`)
	e := c.expect("error")
	if e["code"] != "rate_limited" {
		t.Fatalf("error = %v", e)
	}
	wait, _ := e["retry_after_ms"].(float64)
	if wait <= 0 || wait > 500 {
		t.Fatalf("retry_after_ms = %v, want (0, 500]", e["retry_after_ms"])
	}
	time.Sleep(time.Duration(wait) * time.Millisecond)
	c.send(`{"type":"ping","id":5}`)
	c.expect("pong")
}

func TestConnectionsPerAddress(t *testing.T) {
	srv := startServer(t, &herald.Options{MaxConnectionsPerAddr: 2})
	first := dialWelcome(t, srv.url)
	dialWelcome(t, srv.url)
	_, err := dialHeader(t, srv.url, nil)
	refusedWith(t, err, 503)
	first.conn.Close()
	waitFor(t, "a slot to free", func() bool { return srv.Connections() == 1 })
	dialWelcome(t, srv.url)
}

func TestTLS(t *testing.T) {
	srv := herald.New(nil)
	hs := httptest.NewTLSServer(srv)
	defer func() { hs.Close(); srv.Close() }()
	d := ws.Dialer{Protocols: []string{"herald.v1"}, TLSConfig: &tls.Config{RootCAs: hs.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}}
	conn, _, _, err := d.Dial(t.Context(), "wss"+strings.TrimPrefix(hs.URL, "https")+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &wsConn{t: t, conn: conn, r: conn, autoPong: true}
	c.expect("welcome")
	c.send(`{"type":"ping","id":1}`)
	c.expect("pong")
}
