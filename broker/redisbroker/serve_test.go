package redisbroker_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// process is a "herald serve" process.
type process struct {
	cmd  *exec.Cmd
	base string // http://host:port
	ws   string // ws://host:port/ws
}

// startServe runs "herald serve --broker url" on a free port, with the
// flags of args after those.
func startServe(t *testing.T, bin, url string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--broker", url}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(stderr)
	re := regexp.MustCompile(`url=(http://\S+)/`)
	var log []string
	for lines.Scan() {
		log = append(log, lines.Text())
		if m := re.FindStringSubmatch(lines.Text()); m != nil {
			go io.Copy(io.Discard, stderr)
			return &process{cmd: cmd, base: m[1], ws: "ws" + strings.TrimPrefix(m[1], "http") + "/ws"}
		}
	}
	t.Fatalf("herald serve --broker %s did not start:\n%s", url, strings.Join(log, "\n"))
	return nil
}

// waitReady waits until /readyz answers code.
func (h *process) waitReady(t *testing.T, code int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(h.base + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == code {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/readyz did not answer %d within 10s (last: %v)", h.base, code, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeProcesses runs two "herald serve --broker redis://..."
// processes on one Redis: a message published on one reaches a subscriber
// of the other; both turn unready while Redis is down and ready again
// after; a subscriber of a node killed with SIGKILL recovers on the other.
func TestServeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the herald binary")
	}
	r := startRedis(t)
	bin, err := heraldtest.BuildHerald(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	url := "redis://" + r.addr + "/3"
	a, b := startServe(t, bin, url), startServe(t, bin, url)
	a.waitReady(t, http.StatusOK)
	b.waitReady(t, http.StatusOK)

	const channel = "chat:processes"
	sub := heraldtest.DialWelcome(t, b.ws, nil)
	subscribed := sub.Subscribe(t, 1, channel, nil)
	pub := heraldtest.DialWelcome(t, a.ws, nil)
	for i := uint64(1); i <= 10; i++ {
		if f, err := pub.Publish(i, channel, fmt.Sprintf(`{"n":%d}`, i), ""); err != nil || f.Type != "published" || f.Offset != i {
			t.Fatalf("publish %d on node A: %+v, %v", i, f, err)
		}
		if m := sub.Expect(t, "message"); m.Offset != i {
			t.Fatalf("node B delivered offset %d, want %d", m.Offset, i)
		}
	}

	r.Stop()
	a.waitReady(t, http.StatusServiceUnavailable)
	b.waitReady(t, http.StatusServiceUnavailable)
	if f, err := pub.Publish(11, channel, `{"n":11}`, ""); err != nil || f.Code != "unavailable" {
		t.Fatalf("publish with Redis down: %+v, %v; want error unavailable", f, err)
	}
	r.Restart()
	a.waitReady(t, http.StatusOK)
	b.waitReady(t, http.StatusOK)
	// Redis lost the stream: resubscribing with the old position says so.
	again := sub.Subscribe(t, 2, channel, &heraldtest.Frame{Epoch: subscribed.Epoch, Offset: 10})
	if again.Recovered == nil || *again.Recovered || again.Epoch == subscribed.Epoch || again.Offset != 0 {
		t.Fatalf("resubscribe since %s/10 after the restart: %+v, want recovered:false in a new epoch at 0", subscribed.Epoch, again)
	}
	if f, err := pub.Publish(12, channel, `{"n":12}`, ""); err != nil || f.Type != "published" || f.Offset != 1 {
		t.Fatalf("publish after the restart: %+v, %v; want offset 1 of the new stream", f, err)
	}
	checkData(t, sub.Expect(t, "message"), 12)

	// Node B dies; its subscriber comes back on A after two more messages.
	b.cmd.Process.Kill()
	for i := uint64(13); i <= 14; i++ {
		if f, err := pub.Publish(i, channel, fmt.Sprintf(`{"n":%d}`, i), ""); err != nil || f.Type != "published" {
			t.Fatalf("publish %d: %+v, %v", i, f, err)
		}
	}
	late := heraldtest.DialWelcome(t, a.ws, nil)
	reply := late.Subscribe(t, 1, channel, &heraldtest.Frame{Epoch: again.Epoch, Offset: 1})
	if reply.Recovered == nil || !*reply.Recovered || reply.Offset != 3 {
		t.Fatalf("resubscribe on node A since %s/1: %+v, want recovered:true at offset 3", again.Epoch, reply)
	}
	for want := uint64(2); want <= 3; want++ {
		m := late.Expect(t, "message")
		if m.Offset != want {
			t.Fatalf("recovered offset %d, want %d", m.Offset, want)
		}
		checkData(t, m, want+11)
	}
}
