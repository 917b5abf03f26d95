package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestServeFsyncFlag: --fsync takes always, interval or off, and anything
// else is a usage error that names the flag.
func TestServeFsyncFlag(t *testing.T) {
	var errOut strings.Builder
	code := run(context.Background(), stdio{out: &errOut, err: &errOut}, []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--fsync", "sometimes"})
	if code != 2 || !strings.Contains(errOut.String(), "--fsync must be always, interval or off") {
		t.Fatalf("--fsync sometimes: exit %d, %q; want 2 and the accepted values", code, errOut.String())
	}
}

// TestServeKilledWithFsyncAlwaysRecovers: herald serve --fsync always,
// killed with SIGKILL after acknowledging publications, comes back on the
// same data dir with all of them at the same epoch and offsets.
func TestServeKilledWithFsyncAlwaysRecovers(t *testing.T) {
	bin := buildHerald(t)
	dir := t.TempDir()
	cmd, base := startHerald(t, bin, "--data-dir", dir, "--fsync", "always")
	pub := heraldtest.DialWelcome(t, wsOf(base), nil)
	sub := heraldtest.DialWelcome(t, wsOf(base), nil)
	sub.Send(t, `{"type":"subscribe","id":1,"channel":"room"}`)
	epoch := sub.Expect(t, "subscribed").Fields()["epoch"].(string)
	for i := 1; i <= 5; i++ {
		pub.Send(t, fmt.Sprintf(`{"type":"publish","id":%d,"channel":"room","data":"m%d"}`, i, i))
		pub.Expect(t, "published")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	_, base = startHerald(t, bin, "--data-dir", dir, "--fsync", "always")
	again := heraldtest.DialWelcome(t, wsOf(base), nil)
	again.Send(t, fmt.Sprintf(`{"type":"subscribe","id":1,"channel":"room","since":{"epoch":%q,"offset":0}}`, epoch))
	if s := again.Expect(t, "subscribed").Fields(); s["recovered"] != true || s["epoch"] != epoch || s["offset"] != 5.0 {
		t.Fatalf("after SIGKILL and restart: %v, want recovered:true at %s/5", s, epoch)
	}
	for i := 1; i <= 5; i++ {
		if m := again.Expect(t, "message").Fields(); m["offset"] != float64(i) || m["data"] != fmt.Sprintf("m%d", i) {
			t.Fatalf("replayed %v, want m%d", m, i)
		}
	}
}
