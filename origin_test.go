package herald_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heraldhq/herald"
)

// records is a slog.Handler that keeps every record.
type records struct {
	mu  sync.Mutex
	all []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *records) WithGroup(string) slog.Handler            { return h }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.all = append(h.all, r)
	return nil
}

// warnings returns the origins of the warnings about refused origins.
func (h *records) refusedOrigins() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var origins []string
	for _, r := range h.all {
		if r.Level != slog.LevelWarn || !strings.Contains(r.Message, "origin not allowed") || !strings.Contains(r.Message, "--allowed-origins") {
			continue
		}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "origin" {
				origins = append(origins, a.Value.String())
			}
			return true
		})
	}
	return origins
}

// upgradeFrom asks srv for an upgrade from a page at origin and returns the
// answer's status and body.
func upgradeFrom(srv http.Handler, origin string) (int, string) {
	r := httptest.NewRequest("GET", "http://herald.test/ws", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	r.Header.Set("Origin", origin)
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// TestRefusedOriginWarns: an upgrade from an origin that is not allowed is
// answered 403 with a body that names the origin and the flag, counted in
// herald_upgrades_refused_total{reason="origin"}, and logged as a warning
// naming the origin and the flag, once a minute per origin.
func TestRefusedOriginWarns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := &records{}
		srv := herald.New(&herald.Options{Logger: slog.New(log), AllowedOrigins: []string{"https://app.example.com"}})
		defer srv.Close()
		for range 3 {
			status, body := upgradeFrom(srv, "https://evil.test")
			if status != 403 || !strings.Contains(body, `"https://evil.test" not allowed`) || !strings.Contains(body, "--allowed-origins") {
				t.Fatalf("answer %d %q, want 403 naming the origin and --allowed-origins", status, body)
			}
		}
		upgradeFrom(srv, "https://other.test")
		if got := strings.Join(log.refusedOrigins(), " "); got != "https://evil.test https://other.test" {
			t.Errorf("warned about %q, want each origin once", got)
		}
		time.Sleep(time.Minute)
		upgradeFrom(srv, "https://evil.test")
		if got := len(log.refusedOrigins()); got != 3 {
			t.Errorf("%d warnings after a minute, want 3 (evil.test again)", got)
		}
		metrics := httptest.NewRecorder()
		srv.MetricsHandler().ServeHTTP(metrics, httptest.NewRequest("GET", "/metrics", nil))
		text, _ := io.ReadAll(metrics.Body)
		if want := `herald_upgrades_refused_total{reason="origin"} 5`; !strings.Contains(string(text), want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(string(text), "upgrades_refused"))
		}
	})
}

// TestRefusedOriginWarningsBounded: a client sending ever new origins gets
// at most 256 warnings a minute, however many it sends.
func TestRefusedOriginWarningsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := &records{}
		srv := herald.New(&herald.Options{Logger: slog.New(log)})
		defer srv.Close()
		for i := range 1000 {
			upgradeFrom(srv, "https://n"+strconv.Itoa(i)+".test")
		}
		if got := len(log.refusedOrigins()); got != 256 {
			t.Errorf("%d warnings for 1000 origins within a minute, want 256", got)
		}
		time.Sleep(time.Minute)
		upgradeFrom(srv, "https://late.test")
		if got := len(log.refusedOrigins()); got != 257 {
			t.Errorf("%d warnings, want 257: a minute later a new origin is logged", got)
		}
	})
}

func grepLines(text, word string) string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		if strings.Contains(line, word) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
