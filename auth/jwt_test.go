package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald/auth"
)

func sign(t *testing.T, method jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pemPublic(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestJWTVerify(t *testing.T) {
	secret := []byte("s3cret")
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaPub, err := auth.ParsePublicKey(pemPublic(t, &rsaKey.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	ecPub, err := auth.ParsePublicKey(pemPublic(t, &ecKey.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	hs, _ := auth.NewJWT(auth.JWTOptions{Secret: secret, Audience: "herald", Issuer: "app"})
	rs, _ := auth.NewJWT(auth.JWTOptions{PublicKey: rsaPub})
	es, _ := auth.NewJWT(auth.JWTOptions{PublicKey: ecPub})

	now := time.Now()
	good := jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix(), "aud": "herald", "iss": "app", "channels": []string{"chat:*"}}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for key, val := range good {
			c[key] = val
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	cases := []struct {
		name  string
		v     *auth.JWT
		token string
		ok    bool
	}{
		{"HS256", hs, sign(t, jwt.SigningMethodHS256, secret, good), true},
		{"RS256", rs, sign(t, jwt.SigningMethodRS256, rsaKey, good), true},
		{"ES256", es, sign(t, jwt.SigningMethodES256, ecKey, good), true},
		{"bad signature", hs, sign(t, jwt.SigningMethodHS256, []byte("other"), good), false},
		{"expired", hs, sign(t, jwt.SigningMethodHS256, secret, with("exp", now.Add(-time.Minute).Unix())), false},
		{"not yet valid", hs, sign(t, jwt.SigningMethodHS256, secret, with("nbf", now.Add(time.Minute).Unix())), false},
		{"wrong audience", hs, sign(t, jwt.SigningMethodHS256, secret, with("aud", "someone-else")), false},
		{"wrong issuer", hs, sign(t, jwt.SigningMethodHS256, secret, with("iss", "evil")), false},
		{"no subject", hs, sign(t, jwt.SigningMethodHS256, secret, with("sub", nil)), false},
		{"HS256 token for an RS256 verifier", rs, sign(t, jwt.SigningMethodHS256, pemPublic(t, &rsaKey.PublicKey), good), false},
		{"ES256 key, RS256 token", es, sign(t, jwt.SigningMethodRS256, rsaKey, good), false},
		{"garbage", hs, "not.a.token", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.v.Verify(tc.token)
			if !tc.ok {
				if !errors.Is(err, auth.ErrInvalidToken) {
					t.Fatalf("err = %v, want ErrInvalidToken", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.User != "alice" || len(id.Channels) != 1 || id.Channels[0] != "chat:*" ||
				id.ExpiresAt.Unix() != now.Add(time.Hour).Unix() {
				t.Fatalf("identity = %+v", id)
			}
		})
	}
}

func TestSignHS256RoundTrip(t *testing.T) {
	tok, err := auth.SignHS256([]byte("k"), "bob", []string{"news"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := auth.NewJWT(auth.JWTOptions{Secret: []byte("k")})
	id, err := v.Verify(tok)
	if err != nil || id.User != "bob" || !id.Allows("news") || id.Allows("chat") {
		t.Fatalf("identity %+v, err %v", id, err)
	}
}

func TestNewJWTNeedsOneKey(t *testing.T) {
	if _, err := auth.NewJWT(auth.JWTOptions{}); err == nil {
		t.Error("no key accepted")
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := auth.NewJWT(auth.JWTOptions{Secret: []byte("x"), PublicKey: &key.PublicKey}); err == nil {
		t.Error("secret and public key accepted together")
	}
	if _, err := auth.ParsePublicKey([]byte("nonsense")); err == nil {
		t.Error("non-PEM public key accepted")
	}
}

func TestMatchChannel(t *testing.T) {
	cases := []struct {
		pattern, channel string
		want             bool
	}{
		{"chat:*", "chat:lobby", true},
		{"chat:*", "chat:", true},
		{"chat:*", "chatter", false},
		{"news", "news", true},
		{"news", "news2", false},
		{"*", "anything", true},
	}
	for _, c := range cases {
		if got := auth.MatchChannel(c.pattern, c.channel); got != c.want {
			t.Errorf("MatchChannel(%q, %q) = %v", c.pattern, c.channel, got)
		}
	}
	if !(auth.Identity{}).Allows("x") {
		t.Error("identity without channel list refuses a channel")
	}
}

func TestJWTRequireExp(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	loose, _ := auth.NewJWT(auth.JWTOptions{Secret: secret})
	strict, _ := auth.NewJWT(auth.JWTOptions{Secret: secret, RequireExp: true})
	noExp := sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice"})
	withExp := sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	if _, err := loose.Verify(noExp); err != nil {
		t.Errorf("without RequireExp, a token without exp: %v, want accepted", err)
	}
	if _, err := strict.Verify(noExp); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("with RequireExp, a token without exp: %v, want ErrInvalidToken", err)
	}
	if id, err := strict.Verify(withExp); err != nil || id.User != "alice" {
		t.Errorf("with RequireExp, a token with exp: %v %v, want accepted", id, err)
	}
}
