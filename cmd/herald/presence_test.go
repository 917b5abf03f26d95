package main

import (
	"strings"
	"testing"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/heraldtest/testnode"
)

// TestPresenceCommand prints a channel's members, then the counts, and
// reports presence off as the server's error with exit status 1.
func TestPresenceCommand(t *testing.T) {
	n := testnode.Start(t, herald.Options{Broker: broker.NewMemory(nil),
		Namespaces: map[string]herald.NamespaceOptions{"chat": {Presence: true}}})
	c := heraldtest.MustDial(t, n.URL(), nil)
	id := c.Expect(t, "welcome").Fields()["session"].(string)
	c.Subscribe(t, 1, "chat:room", nil)

	var out, errOut syncBuffer
	if code := runCmd(t.Context(), "", &out, &errOut, "presence", "--url", n.URL(), "chat:room"); code != 0 {
		t.Fatalf("presence: exit %d, stderr %q", code, errOut.String())
	}
	if got, want := out.String(), `{"client":"`+id+`"}`+"\n"+`{"clients":1,"users":0}`+"\n"; got != want {
		t.Errorf("presence printed %q, want %q", got, want)
	}
	out, errOut = syncBuffer{}, syncBuffer{}
	code := runCmd(t.Context(), "", &out, &errOut, "presence", "--url", n.URL(), "news")
	if code != 1 || !strings.Contains(errOut.String(), "bad_request: presence is off for this namespace") {
		t.Errorf("presence where it is off: exit %d, stderr %q", code, errOut.String())
	}
}
