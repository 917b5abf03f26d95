//go:build unix

package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestMaxConnectionsDefaultFollowsOpenFileLimit runs herald serve with an
// open-file limit of 200 and no --max-connections: 100 connections (half
// the limit, since it is under 512) are let in, the next upgrade gets 503.
func TestMaxConnectionsDefaultFollowsOpenFileLimit(t *testing.T) {
	bin := buildHerald(t)
	_, base := startServeCmd(t, exec.Command("sh", "-c", `ulimit -n 200 && exec "$0" serve --addr 127.0.0.1:0`, bin))
	for range 100 {
		heraldtest.DialWelcome(t, wsOf(base), nil)
	}
	_, err := heraldtest.Dial(t.Context(), wsOf(base), nil)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("upgrade 101 with an open-file limit of 200: %v, want 503", err)
	}
}
