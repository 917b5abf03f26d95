package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestJWTRequireExp: with --jwt-require-exp a token without exp is refused,
// one with exp accepted.
func TestJWTRequireExp(t *testing.T) {
	secret := strings.Repeat("s", 32)
	addr := startServe(t, "--jwt-secret", secret, "--jwt-require-exp")
	for name, c := range map[string]jwt.MapClaims{
		"no exp":   {"sub": "alice"},
		"with exp": {"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()},
	} {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		conn, err := heraldtest.Dial(t.Context(), "ws://"+addr+"/ws", &heraldtest.DialOptions{Header: http.Header{"Authorization": {"Bearer " + tok}}})
		var reply string
		if err == nil {
			f, ferr := conn.Next(heraldtest.Timeout)
			reply = f.String()
			if ferr != nil {
				reply = ferr.Error()
			}
			conn.Close()
		} else {
			reply = err.Error()
		}
		if accepted := strings.Contains(reply, `"type":"welcome"`); accepted != (name == "with exp") {
			t.Errorf("token %s: %s", name, reply)
		}
	}
}

// TestShortJWTSecretWarns: serve warns at start about an HS256 secret under
// 32 bytes, and not about one of 32.
func TestShortJWTSecretWarns(t *testing.T) {
	for secret, warn := range map[string]bool{"s3cret": true, strings.Repeat("s", 32): false} {
		_, stop, log := startServeStop(t, "--jwt-secret", secret)
		stop()
		if got := strings.Contains(log.String(), "level=WARN") && strings.Contains(log.String(), "jwt-secret is short"); got != warn {
			t.Errorf("secret of %d bytes: warned %v, want %v\n%s", len(secret), got, warn, log)
		}
	}
}
