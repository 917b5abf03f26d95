package herald_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/heraldhq/herald"
)

func TestUpgradeChecks(t *testing.T) {
	srv := startServer(t, &herald.Options{AllowedOrigins: []string{"https://*.example.com"}})
	host := strings.TrimPrefix(srv.http.URL, "http://")
	cases := []struct {
		name   string
		header http.Header
		status int
	}{
		{"foreign origin", http.Header{"Origin": {"https://evil.test"}}, 403},
		{"allowed pattern", http.Header{"Origin": {"https://app.example.com"}}, 101},
		{"pattern does not cross dots into paths", http.Header{"Origin": {"https://example.com"}}, 403},
		{"same host origin", http.Header{"Origin": {"http://" + host}}, 101},
		{"other subprotocol only", http.Header{"Sec-WebSocket-Protocol": {"mqtt"}}, 400},
		{"no subprotocol", http.Header{}, 101},
		{"herald.v1 among others", http.Header{"Sec-WebSocket-Protocol": {"mqtt, herald.v1"}}, 101},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := upgradeRequest(t, srv.http.URL+"/ws", tc.header)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status == 101 && tc.header.Get("Sec-WebSocket-Protocol") != "" &&
				resp.Header.Get("Sec-WebSocket-Protocol") != "herald.v1" {
				t.Fatalf("negotiated %q", resp.Header.Get("Sec-WebSocket-Protocol"))
			}
		})
	}
	resp, err := http.Get(srv.http.URL + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET: status %d, want 426", resp.StatusCode)
	}
}

// upgradeRequest sends a WebSocket upgrade and returns the response; a 101
// connection is closed by the test's cleanup.
func upgradeRequest(t *testing.T, url string, h http.Header) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}
