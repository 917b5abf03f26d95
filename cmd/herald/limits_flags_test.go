package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestServeLimitFlags: --allowed-hosts, --history-max-bytes and the publish
// byte rate reach the server and its broker.
func TestServeLimitFlags(t *testing.T) {
	bin := buildHerald(t)
	_, base := startHerald(t, bin, "--api-key", "k", "--allowed-hosts", "app.test",
		"--history-max-bytes", "300000", "--publish-bytes-rate", "1024", "--publish-bytes-burst", "70000")
	port := base[strings.LastIndex(base, ":"):]

	for host, want := range map[string]int{"app.test": 101, "localhost": 403, "127.0.0.1": 403} {
		req, _ := http.NewRequest("GET", base+"/ws", nil)
		req.Host = host + port
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("upgrade with Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}

	data := `"` + strings.Repeat("x", 60_000) + `"`
	for i := range 10 {
		req, _ := http.NewRequest("POST", base+"/api/publish", strings.NewReader(fmt.Sprintf(`{"channel":"h%d","data":%s}`, i, data)))
		req.Host = "app.test" + port
		req.Header.Set("Authorization", "Bearer k")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("API publish %d: status %d", i, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Host = "app.test" + port
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`(?m)^herald_history_bytes (\S+)$`).FindStringSubmatch(string(metrics))
	if m == nil {
		t.Fatalf("no herald_history_bytes in /metrics")
	}
	if held, _ := strconv.ParseFloat(m[1], 64); held <= 0 || held > 300000 {
		t.Errorf("herald_history_bytes = %s after 600 KB published, want within --history-max-bytes 300000", m[1])
	}

	c := heraldtest.DialWelcome(t, "ws://app.test"+port+"/ws", &heraldtest.DialOptions{Addr: "127.0.0.1" + port})
	c.Send(t, fmt.Sprintf(`{"type":"publish","id":1,"channel":"w","data":%s}`, data))
	c.Expect(t, "published")
	c.Send(t, fmt.Sprintf(`{"type":"publish","id":2,"channel":"w","data":%s}`, data))
	c.ExpectError(t, "rate_limited", 2)
}
