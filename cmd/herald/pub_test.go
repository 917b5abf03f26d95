package main

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
)

// TestPubFailureExitsNonZero checks that a refused publish stops pub with
// exit status 1 and the error on stderr, after the acknowledgements of the
// lines before it.
func TestPubFailureExitsNonZero(t *testing.T) {
	n := testnode.Start(t, herald.Options{Broker: broker.NewMemory(nil)})
	var out, errOut syncBuffer
	c := runCmd(t.Context(), "1\n2\n", &out, &errOut, "pub", "--url", n.URL(), "bad channel!")
	if c != 1 || !strings.Contains(errOut.String(), "invalid_channel") {
		t.Errorf("pub to an invalid channel: exit %d, stderr %q; want 1 and invalid_channel", c, errOut.String())
	}
	if got := errOut.String(); !strings.HasPrefix(got, `herald pub: publish to "bad channel!": invalid_channel: `) {
		t.Errorf("pub error reads %q, want one prefix", got)
	}
	big := strings.Repeat("x", 70<<10)
	out, errOut = syncBuffer{}, syncBuffer{}
	c = runCmd(t.Context(), "1\n"+big+"\n3\n", &out, &errOut, "pub", "--url", n.URL(), "chat")
	if c != 1 || !strings.Contains(errOut.String(), "max_message_bytes") {
		t.Errorf("pub of a line over max_message_bytes: exit %d, stderr %q; want 1 and the reason", c, errOut.String())
	}
	if got := out.String(); got != `{"channel":"chat","offset":1}`+"\n" {
		t.Errorf("pub printed %q, want the first line's acknowledgement only", got)
	}
}

// TestPubUnreachableServer checks that pub gives up when no server answers.
func TestPubUnreachableServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	defer func(d time.Duration) { pubDialTimeout = d }(pubDialTimeout)
	pubDialTimeout = 500 * time.Millisecond
	var out, errOut syncBuffer
	start := time.Now()
	c := runCmd(t.Context(), "", &out, &errOut, "pub", "--url", "ws://"+addr+"/ws", "chat", "1")
	if c != 1 || !strings.Contains(errOut.String(), "connection refused") || time.Since(start) > 5*time.Second {
		t.Errorf("pub to a closed port: exit %d after %v, stderr %q", c, time.Since(start), errOut.String())
	}
}
