package herald

import (
	"net/http"
	"testing"
)

func TestMatchOrigin(t *testing.T) {
	cases := []struct {
		pattern, origin string
		want            bool
	}{
		{"*", "https://anything.test", true},
		{"https://app.example.com", "https://app.example.com", true},
		{"https://app.example.com", "HTTPS://APP.EXAMPLE.COM", true},
		{"https://app.example.com", "https://app.example.com:8443", false},
		{"https://app.example.com", "http://app.example.com", false},
		{"https://*.example.com", "https://a.example.com", true},
		{"https://*.example.com", "https://a.b.example.com", true},
		{"https://*.example.com", "https://example.com", false},
		{"https://*.example.com", "https://.example.com", false}, // * is one or more characters
		{"https://*.example.com", "https://evil.test/x.example.com", false},
		{"https://*.example.com", "https://example.com.evil.test", false},
		{"https://*.example.com", "http://a.example.com", false},
		{"http://localhost:*", "http://localhost:5173", true},
	}
	for _, tc := range cases {
		if got := matchOrigin(tc.pattern, tc.origin); got != tc.want {
			t.Errorf("matchOrigin(%q, %q) = %v, want %v", tc.pattern, tc.origin, got, tc.want)
		}
	}
}

func TestOffersProtocol(t *testing.T) {
	cases := []struct {
		offered []string
		want    bool
	}{
		{nil, true},
		{[]string{""}, true},
		{[]string{"herald.v1"}, true},
		{[]string{"mqtt, herald.v1"}, true},
		{[]string{"mqtt", " herald.v1 "}, true},
		{[]string{"mqtt"}, false},
		{[]string{"herald.v2"}, false},
		{[]string{"Herald.v1"}, false}, // subprotocols are case-sensitive
	}
	for _, tc := range cases {
		r := &http.Request{Header: http.Header{"Sec-Websocket-Protocol": tc.offered}}
		if got := offersProtocol(r); got != tc.want {
			t.Errorf("offersProtocol(%q) = %v, want %v", tc.offered, got, tc.want)
		}
	}
}
