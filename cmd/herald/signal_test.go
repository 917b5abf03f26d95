package main

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestSecondSignalForcesExit stops herald serve with SIGTERM while a client
// never answers its close, then sends SIGTERM again: the process exits at
// once, with status 1, saying why.
func TestSecondSignalForcesExit(t *testing.T) {
	bin := buildHerald(t)
	cmd, base, log := startServeLog(t, exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--shutdown-timeout", "60s"))
	heraldtest.DialWelcome(t, wsOf(base), nil) // never reads again, never answers the close

	cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, "shutting down", func() bool { return strings.Contains(log.String(), "shutting down") })
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("exit after a second SIGTERM: %v, want status 1", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running %v after a second SIGTERM", time.Since(start))
	}
	if !strings.Contains(log.String(), "again during the shutdown") {
		t.Errorf("the forced exit is not logged:\n%s", log.String())
	}
}
