package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// runWithin runs the herald command line args, failing the test unless it
// ends within d; it returns the exit status and what went to stderr.
func runWithin(t *testing.T, d time.Duration, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d+10*time.Second)
	defer cancel()
	var out, errOut syncBuffer
	start := time.Now()
	code := runCmd(ctx, "", &out, &errOut, args...)
	if took := time.Since(start); took > d {
		t.Errorf("%q took %v, want at most %v; stderr:\n%s", args, took, d, errOut.String())
	}
	return code, errOut.String()
}

// TestSubPubWithoutTokenAgainstJWTServer: herald sub and herald pub without
// a token against herald serve with a JWT secret end within the hello
// timeout plus a second, with status 1 and a message that names the flag.
func TestSubPubWithoutTokenAgainstJWTServer(t *testing.T) {
	t.Setenv("HERALD_JWT_SECRET", strings.Repeat("s", 32))
	const hello = 500 * time.Millisecond
	url := "ws://" + startServe(t, "--hello-timeout", hello.String()) + "/ws"
	for _, args := range [][]string{
		{"sub", "--url", url, "chat"},
		{"pub", "--url", url, "chat", "hi"},
	} {
		code, stderr := runWithin(t, hello+time.Second, args...)
		if code != 1 || !strings.Contains(stderr, url+" needs a token") || !strings.Contains(stderr, "--token") {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant 1 and a message that the server needs a token", args[0], code, stderr)
		}
	}
}

// TestSubWithoutWSPath: herald sub at the server's address without /ws,
// where herald serve answers with the demo page, ends at once with status
// 1 and a message that says what the URL answered and asks about /ws.
func TestSubWithoutWSPath(t *testing.T) {
	url := "ws://" + startServe(t)
	code, stderr := runWithin(t, time.Second, "sub", "--url", url, "chat")
	want := url + " answered HTTP 200 text/html, not a WebSocket upgrade: is the path /ws?"
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr:\n%s\nwant 1 and %q", code, stderr, want)
	}
}
