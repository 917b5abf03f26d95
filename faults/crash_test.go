package faults_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// Crash rounds per --fsync mode: crashRounds with HERALD_FAULTS=1, a few
// otherwise (the quick suite).
const (
	crashRounds      = 50
	quickCrashRounds = 3
	crashChannels    = 4
)

// quickBin is the herald binary of the quick suite, built on first use.
var quickBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "herald-crash-")
	if err != nil {
		return "", err
	}
	quickBinDir = dir
	return heraldtest.BuildHerald(dir)
})

var quickBinDir string // removed by TestMain

// TestCrashRestart publishes on several channels, kills herald serve with
// SIGKILL at a random moment, restarts it on the same data dir and checks
// every channel with a subscribe since its position before the round:
// with --fsync always every acknowledged publication is there at the same
// epoch and offset and the subscription recovers (recovered:true); with
// interval every channel either has all acknowledged publications or a new
// epoch (recovered:false).
func TestCrashRestart(t *testing.T) {
	rounds := quickCrashRounds
	bin := heraldBin
	if enabled() {
		rounds = crashRounds
	} else {
		var err error
		if bin, err = quickBin(); err != nil {
			t.Fatal(err)
		}
	}
	for _, mode := range []string{"always", "interval"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			c := &crashRun{t: t, bin: bin, mode: mode, dir: t.TempDir(), chans: make([]chanState, crashChannels)}
			for round := range rounds {
				c.round(round)
			}
			c.startAndCheck(rounds)
			t.Logf("%d rounds of SIGKILL with --fsync %s: %d publications acknowledged, %d channel checks recovered, %d with a new epoch",
				rounds, mode, c.acked, c.recovered, c.newEpochs)
		})
	}
}

type crashRun struct {
	t     *testing.T
	bin   string
	mode  string
	dir   string
	chans []chanState
	srv   *exec.Cmd
	url   string

	acked, recovered, newEpochs int
}

// chanState is what the test knows of a channel: its stream position at the
// start of the round and the data acknowledged at each offset since.
type chanState struct {
	epoch  string
	offset uint64
	mu     sync.Mutex
	acked  map[uint64]string
}

func channelName(i int) string { return "crash:" + strconv.Itoa(i) }

// round starts the server, checks it against what was acknowledged before,
// publishes until a random moment and kills it.
func (c *crashRun) round(round int) {
	c.startAndCheck(round)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range c.chans {
		wg.Go(func() { c.publish(ctx, round, i) })
	}
	time.Sleep(time.Duration(100+rand.IntN(500)) * time.Millisecond)
	c.srv.Process.Kill() // SIGKILL
	c.srv.Wait()
	cancel()
	wg.Wait()
}

// publish publishes on channel i until the connection fails.
func (c *crashRun) publish(ctx context.Context, round, i int) {
	conn, err := heraldtest.Dial(ctx, c.url, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	if _, err := conn.Next(heraldtest.Timeout); err != nil { // welcome
		return
	}
	ch := &c.chans[i]
	for n := uint64(1); ctx.Err() == nil; n++ {
		data := fmt.Sprintf(`"r%d-%d"`, round, n)
		f, err := conn.Publish(n, channelName(i), data, "")
		if err != nil || f.Type != "published" {
			return
		}
		ch.mu.Lock()
		ch.acked[f.Offset] = data
		ch.mu.Unlock()
	}
}

// startAndCheck starts the server and subscribes to every channel since
// its position before the last round.
func (c *crashRun) startAndCheck(round int) {
	t := c.t
	c.srv, c.url = startCrashServer(t, c.bin, "--data-dir", c.dir, "--fsync", c.mode)
	conn := heraldtest.DialWelcome(t, c.url, nil)
	defer conn.Close()
	for i := range c.chans {
		ch := &c.chans[i]
		var since *heraldtest.Frame
		if ch.epoch != "" {
			since = &heraldtest.Frame{Epoch: ch.epoch, Offset: ch.offset}
		}
		sub := conn.Subscribe(t, uint64(i+1), channelName(i), since)
		c.acked += len(ch.acked)
		switch {
		case since == nil:
		case sub.Epoch != ch.epoch:
			if c.mode == "always" {
				t.Fatalf("round %d: %s has a new epoch %s after SIGKILL (was %s at %d, %d acknowledged since) with --fsync always",
					round, channelName(i), sub.Epoch, ch.epoch, ch.offset, len(ch.acked))
			}
			if sub.Recovered == nil || *sub.Recovered {
				t.Fatalf("round %d: %s has a new epoch but recovered is not false: %s", round, channelName(i), sub)
			}
			c.newEpochs++
		default:
			c.checkRecovered(round, i, sub, conn)
		}
		ch.epoch, ch.offset, ch.acked = sub.Epoch, sub.Offset, make(map[uint64]string)
	}
	conn.Send(t, `{"type":"ping","id":999}`) // nothing more was replayed
	conn.Expect(t, "pong")
}

// checkRecovered reads the messages recovered on channel i after sub and
// checks that every acknowledged publication is among them, unchanged.
func (c *crashRun) checkRecovered(round, i int, sub heraldtest.Frame, conn *heraldtest.Conn) {
	t := c.t
	ch := &c.chans[i]
	if sub.Recovered == nil || !*sub.Recovered {
		t.Fatalf("round %d: %s kept its epoch but did not recover: %s", round, channelName(i), sub)
	}
	for off := range ch.acked {
		if off > sub.Offset {
			t.Fatalf("round %d: %s restarted at offset %d, but %d was acknowledged (--fsync %s)", round, channelName(i), sub.Offset, off, c.mode)
		}
	}
	for off := ch.offset + 1; off <= sub.Offset; off++ {
		m := conn.Expect(t, "message")
		if m.Channel != channelName(i) || m.Offset != off {
			t.Fatalf("round %d: recovered %s, want %s offset %d", round, m, channelName(i), off)
		}
		if want, ok := ch.acked[off]; ok && string(m.Data) != want {
			t.Fatalf("round %d: %s offset %d = %s, acknowledged as %s", round, channelName(i), off, m.Data, want)
		}
	}
	c.recovered++
}

// startCrashServer runs herald serve on a free port of 127.0.0.1 with args
// and returns it and its WebSocket URL.
func startCrashServer(t *testing.T, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--log-format", "json",
		"--rate", "100000", "--burst", "100000", "--history-size", "100000", "--history-ttl", "30m"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	s := &server{log: new(lockedBuffer)}
	addr := make(chan string, 1)
	go func() {
		s.readLog(stderr, addr)
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatalf("herald serve exited at start:\n%s", s.log)
		}
		return cmd, "ws://" + a + "/ws"
	case <-time.After(30 * time.Second):
		t.Fatalf("herald serve did not report its address\n%s", s.log)
	}
	return nil, ""
}
