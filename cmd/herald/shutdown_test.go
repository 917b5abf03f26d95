package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestShutdownThatCutsConnectionsSucceeds: a client that never answers its
// close is cut when --shutdown-timeout ends; the shutdown did what was
// asked, so serve returns no error (exit status 0), and logs the cut.
func TestShutdownThatCutsConnectionsSucceeds(t *testing.T) {
	addr, stop, log := startServeStop(t, "--shutdown-timeout", "400ms")
	silent := heraldtest.DialWelcome(t, "ws://"+addr+"/ws", nil) // never reads again
	keepAlive(t, addr, "/healthz")
	slow := dial(t, addr)
	slow.Write([]byte("GET /healthz HTTP/1.1\r\n")) // a request that never ends
	if err := stop(); err != nil {
		t.Fatalf("shutdown that cut a silent client: %v, want success\n%s", err, log)
	}
	if !strings.Contains(log.String(), "shutdown timeout") {
		t.Errorf("the cut is not logged:\n%s", log)
	}
	if !closedWithin(silent.NetConn(), heraldtest.Timeout) || !closedWithin(slow, heraldtest.Timeout) {
		t.Error("connections left open after the shutdown")
	}
}

// TestShutdownThatCannotSaveFails: when --data-dir cannot be written at
// shutdown, serve returns the error (exit status 1) and logs it.
func TestShutdownThatCannotSaveFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	addr, stop, log := startServeStop(t, "--data-dir", dir)
	c := heraldtest.DialWelcome(t, "ws://"+addr+"/ws", nil)
	c.Send(t, `{"type":"publish","id":1,"channel":"room","data":1}`)
	c.Expect(t, "published")
	c.Close()
	os.RemoveAll(dir)
	if err := os.WriteFile(dir, nil, 0o600); err != nil { // no longer a directory
		t.Fatal(err)
	}
	err := stop()
	if err == nil || !strings.Contains(err.Error(), "save streams") {
		t.Fatalf("shutdown that could not save: %v, want the save error", err)
	}
	if !strings.Contains(log.String(), "level=ERROR") || !strings.Contains(log.String(), "save streams") {
		t.Errorf("the failure is not logged:\n%s", log)
	}
}
