package client

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
)

func TestTokenExpiry(t *testing.T) {
	signed, err := auth.SignHS256([]byte("secret"), "alice", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	jwtWith := func(payload string) string {
		return "eyJhbGciOiJIUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2ln"
	}
	padded := "eyJhbGciOiJIUzI1NiJ9." + base64.URLEncoding.EncodeToString([]byte(`{"exp":1700000000}`)) + ".c2ln"
	for _, tc := range []struct {
		name  string
		token string
		want  time.Time // zero: no expiry
	}{
		{"signed", signed, time.Now().Add(time.Hour).Truncate(time.Second)},
		{"integer exp", jwtWith(`{"sub":"a","exp":1767225600}`), time.Unix(1767225600, 0)},
		{"fractional exp", jwtWith(`{"exp":1767225600.5}`), time.Unix(1767225600, 5e8)},
		{"padded base64", padded, time.Unix(1700000000, 0)},
		{"no exp", jwtWith(`{"sub":"a"}`), time.Time{}},
		{"string exp", jwtWith(`{"exp":"1767225600"}`), time.Time{}},
		{"negative exp", jwtWith(`{"exp":-1}`), time.Time{}},
		{"payload not JSON", jwtWith(`exp`), time.Time{}},
		{"payload not base64", "a.!!!.c", time.Time{}},
		{"not a JWT", "static-token", time.Time{}},
		{"two parts", "a.b", time.Time{}},
		{"empty", "", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tokenExpiry(tc.token)
			if ok != !tc.want.IsZero() || !got.Equal(tc.want) {
				t.Errorf("tokenExpiry = %v, %v; want %v, %v", got, ok, tc.want, !tc.want.IsZero())
			}
		})
	}
}

func TestRefreshDelay(t *testing.T) {
	for _, tc := range []struct {
		remaining time.Duration
		lo, hi    time.Duration // delay bounds over r in [0, 1)
	}{
		// Long-lived tokens: at 80-90 % of the remaining lifetime.
		{time.Hour, 48 * time.Minute, 54 * time.Minute},
		{10 * time.Minute, 8 * time.Minute, 9 * time.Minute},
		// At least 5 s before exp.
		{30 * time.Second, 24 * time.Second, 25 * time.Second},
		{10 * time.Second, 5 * time.Second, 5 * time.Second},
		// Shorter than twice that: halfway.
		{6 * time.Second, 3 * time.Second, 3 * time.Second},
		{2 * time.Second, time.Second, time.Second},
		{0, 0, 0},
		{-time.Second, 0, 0},
	} {
		for _, r := range []float64{0, 0.5, 0.999999} {
			d := refreshDelay(tc.remaining, r)
			if d < tc.lo || d > tc.hi {
				t.Errorf("refreshDelay(%v, %v) = %v, want within [%v, %v]", tc.remaining, r, d, tc.lo, tc.hi)
			}
		}
	}
	if a, b := refreshDelay(time.Hour, 0), refreshDelay(time.Hour, 0.99); a-b < 5*time.Minute {
		t.Errorf("refresh of an hour-long token jittered over only %v", a-b)
	}
}
