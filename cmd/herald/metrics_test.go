package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// get fetches url with the bearer key (if any) and returns the status and
// the body.
func get(t *testing.T, url, key string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestMetricsNeedTheAPIKey: with --api-key, /metrics answers only with the
// key; without one it stays open.
func TestMetricsNeedTheAPIKey(t *testing.T) {
	base := "http://" + startServe(t, "--api-key", "k3y")
	for key, want := range map[string]int{"": 401, "wrong": 401, "k3y": 200} {
		if resp, body := get(t, base+"/metrics", key); resp.StatusCode != want || want == 200 && !strings.Contains(body, "herald_connections") {
			t.Errorf("/metrics with key %q: %d %.80s, want %d", key, resp.StatusCode, body, want)
		}
	}
	open := "http://" + startServe(t)
	if resp, body := get(t, open+"/metrics", ""); resp.StatusCode != 200 || !strings.Contains(body, "herald_connections") {
		t.Errorf("/metrics without --api-key: %d, want 200", resp.StatusCode)
	}
}

// TestMetricsAddr: --metrics-addr serves /metrics there, without the key,
// and no longer on the main port.
func TestMetricsAddr(t *testing.T) {
	addr, _, log := startServeStop(t, "--api-key", "k3y", "--metrics-addr", "127.0.0.1:0")
	re := regexp.MustCompile(`msg="metrics serving" url=(\S+)`)
	waitFor(t, "metrics url", func() bool { return re.MatchString(log.String()) })
	url := re.FindStringSubmatch(log.String())[1]
	if resp, body := get(t, url, ""); resp.StatusCode != 200 || !strings.Contains(body, "herald_connections") {
		t.Errorf("%s: %d, want 200 with the metrics", url, resp.StatusCode)
	}
	if resp, _ := get(t, "http://"+addr+"/metrics", "k3y"); resp.StatusCode == 200 {
		t.Errorf("/metrics on the main port with --metrics-addr: %d, want none", resp.StatusCode)
	}
}

// TestDashboardRefusesFrames: the dashboard, where the API key is typed,
// may not be framed by another page.
func TestDashboardRefusesFrames(t *testing.T) {
	base := "http://" + startServe(t, "--api-key", "k3y")
	resp, body := get(t, base+"/dashboard/", "")
	if resp.StatusCode != 200 || !strings.Contains(strings.ToLower(body), "<html") {
		t.Fatalf("/dashboard/: %d %.80s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("X-Frame-Options %q, want DENY", got)
	}
	if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q, want frame-ancestors 'none'", got)
	}
}
