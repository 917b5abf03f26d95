package herald_test

import (
	"io"
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

// DNS rebinding: a page at http://rebind.example:PORT whose name resolves to
// 127.0.0.1 sends a matching Host and Origin. A server reached on loopback
// answers only to loopback names unless told otherwise.
func TestHostCheck(t *testing.T) {
	loopback := startServer(t, nil)
	listed := startServer(t, &herald.Options{AllowedHosts: []string{"app.example.com", "*.example.net"}})
	cases := []struct {
		name   string
		srv    *testServer
		host   string
		status int
	}{
		{"rebinding name on loopback", loopback, "rebind.example", 403},
		{"localhost", loopback, "localhost", 101},
		{"127.0.0.1", loopback, "127.0.0.1", 101},
		{"[::1]", loopback, "[::1]", 101},
		{"listed name", listed, "app.example.com", 101},
		{"listed name, other case", listed, "APP.example.com", 101},
		{"name under a listed pattern", listed, "a.example.net", 101},
		{"pattern's own name", listed, "example.net", 403},
		{"loopback name not listed", listed, "localhost", 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			port := tc.srv.http.URL[strings.LastIndex(tc.srv.http.URL, ":"):]
			h := http.Header{"Host": {tc.host + port}, "Origin": {"http://" + tc.host + port}}
			resp := upgradeRequest(t, tc.srv.http.URL+"/ws", h)
			if resp.StatusCode != tc.status {
				t.Fatalf("Host %s: status %d, want %d", tc.host, resp.StatusCode, tc.status)
			}
		})
	}
	api := startAPIServer(t, herald.Options{APIKey: "k"})
	req, _ := http.NewRequest("GET", api.api+"/api/stats", nil)
	req.Host = "rebind.example"
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("API call with a rebinding Host: status %d, want 403", resp.StatusCode)
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
	if host := h.Get("Host"); host != "" {
		req.Host = host
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

// A page's own request to the WebSocket URL (not an upgrade) can read why an
// upgrade would fail: 403 for a refused origin, 426 for any other.
func TestPlainRequestFromAPageIsReadable(t *testing.T) {
	srv := startServer(t, &herald.Options{AllowedOrigins: []string{"https://app.example.com"}})
	for origin, want := range map[string]int{"https://evil.test": 403, "https://app.example.com": 426} {
		req, _ := http.NewRequest("GET", srv.http.URL+"/ws", nil)
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || resp.Header.Get("Access-Control-Allow-Origin") != origin {
			t.Errorf("GET from %s: %d, Access-Control-Allow-Origin %q; want %d readable by that origin", origin, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), want)
		}
		if want == 403 && !strings.Contains(string(body), "--allowed-origins") {
			t.Errorf("403 body %q does not say how to allow the origin", body)
		}
	}
}
