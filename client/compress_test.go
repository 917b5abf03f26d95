package client_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
)

// TestCompression: a client with Compression gets large messages
// compressed by a server with Compression, and reads them and small plain
// ones alike.
func TestCompression(t *testing.T) {
	reg := prometheus.NewRegistry()
	n := testnode.Start(t, herald.Options{Compression: true, Registry: reg})
	c := dialClient(t, n.URL(), &client.Options{Compression: true})
	got := make(chan string, 2)
	if _, err := c.Subscribe(t.Context(), "room", func(m client.Message) { got <- string(m.Data) }); err != nil {
		t.Fatal(err)
	}
	large, _ := json.Marshal(map[string]string{"text": strings.Repeat("the quick brown fox jumps over the lazy dog ", 12)})
	for _, data := range []json.RawMessage{large, json.RawMessage(`{"text":"hi"}`)} {
		if _, err := c.Publish(t.Context(), "room", data); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if m != string(data) {
				t.Fatalf("got %s, want %s", m, data)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no message")
		}
	}
	if v := compressed(t, reg); v != 1 {
		t.Fatalf("server compressed %v messages, want 1 (the large one)", v)
	}
}

func compressed(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "herald_compressed_messages_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
