package faults_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/client"
)

// payload is what the publisher sends: a sequence number from 1 (0 for the
// messages that fill the history before the measurement) and the wall-clock
// time of the publish.
type payload struct {
	N int   `json:"n"`
	T int64 `json:"t"` // Unix nanoseconds
}

// delivery is one message a subscriber handed over.
type delivery struct {
	n        int
	offset   uint64
	sent, at time.Time
}

// event is a connection event a subscriber reported.
type event struct {
	at   time.Time
	what string
}

// recorder keeps what one subscriber received and reported.
type recorder struct {
	name string

	mu          sync.Mutex
	got         []delivery
	events      []event
	unrecovered int // recoveries that failed: messages were skipped
	changed     chan struct{}
}

func newRecorder(name string) *recorder {
	return &recorder{name: name, changed: make(chan struct{}, 1)}
}

func (r *recorder) deliver(data []byte, offset uint64, at time.Time) {
	var p payload
	if err := json.Unmarshal(data, &p); err != nil {
		p.N = -1 // not ours: counted as unexpected
	}
	r.mu.Lock()
	r.got = append(r.got, delivery{n: p.N, offset: offset, sent: time.Unix(0, p.T), at: at})
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) event(at time.Time, what string) {
	r.mu.Lock()
	r.events = append(r.events, event{at, what})
	if strings.Contains(what, "recovered=false") {
		r.unrecovered++
	}
	r.mu.Unlock()
}

// last is the highest sequence number received so far.
func (r *recorder) last() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, d := range r.got {
		n = max(n, d.n)
	}
	return n
}

// waitFor waits until message n arrived, or ctx ends.
func (r *recorder) waitFor(ctx context.Context, n int) bool {
	for r.last() < n {
		select {
		case <-ctx.Done():
			return false
		case <-r.changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
	return true
}

// snapshot returns copies of what was recorded.
func (r *recorder) snapshot() ([]delivery, []event, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...), append([]event(nil), r.events...), r.unrecovered
}

type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// goSubscriber subscribes with the Go client, default options but for the
// dialer (nil: the default).
func goSubscriber(ctx context.Context, t *testing.T, url, channel string, dial dialFunc) *recorder {
	t.Helper()
	rec := newRecorder("go client")
	c, err := client.Dial(ctx, url, &client.Options{
		NetDial: dial,
		OnStateChange: func(ch client.StateChange) {
			switch ch.State {
			case client.StateConnected:
				rec.event(time.Now(), "connected")
			case client.StateDisconnected:
				rec.event(time.Now(), fmt.Sprintf("disconnected: %v", ch.Err))
			}
		},
	})
	if err != nil {
		t.Fatalf("go client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	_, err = c.Subscribe(ctx, channel,
		func(m client.Message) { rec.deliver(m.Data, m.Offset, time.Now()) },
		client.OnRecovery(func(r client.Recovery) {
			if !r.Recovered {
				rec.event(time.Now(), fmt.Sprintf("recovered=false since %d", r.Since.Offset))
			}
		}))
	if err != nil {
		t.Fatalf("go client: subscribe: %v", err)
	}
	return rec
}

// heraldSub runs `herald sub` (inside ns when it is not nil) and records its
// JSON lines and the connection events it prints on stderr.
func heraldSub(ctx context.Context, t *testing.T, url, channel string, ns *netns) *recorder {
	t.Helper()
	rec := newRecorder("herald sub")
	args := []string{"sub", "--url", url, channel}
	cmd := exec.Command(heraldBin, args...)
	if ns != nil {
		cmd = ns.command(heraldBin, args...)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	log := new(lockedBuffer)
	subscribed := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var line struct {
				Offset uint64          `json:"offset"`
				Data   json.RawMessage `json:"data"`
			}
			at := time.Now()
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				rec.deliver(nil, 0, at)
				continue
			}
			rec.deliver(line.Data, line.Offset, at)
		}
	}()
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			log.Write([]byte(line + "\n"))
			switch {
			case strings.HasPrefix(line, "subscribed to "):
				once.Do(func() { close(subscribed) })
			case strings.HasPrefix(line, "connected to "):
				rec.event(time.Now(), "connected")
			case strings.HasPrefix(line, "disconnected: "), strings.Contains(line, "recovered=false"):
				rec.event(time.Now(), line)
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { wg.Wait(); exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("herald sub: %v\n%s", err, log)
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Errorf("herald sub did not exit within 15 s of SIGTERM")
		}
		if strings.Contains(log.String(), "DATA RACE") {
			t.Errorf("the race detector reported a data race in herald sub:\n%s", log)
		}
	})
	select {
	case <-subscribed:
	case <-time.After(30 * time.Second):
		t.Fatalf("herald sub did not subscribe within 30 s:\n%s", log)
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	return rec
}

// publisher sends numbered messages at a steady rate on its own,
// unfaulted connection and keeps the offset the server gave each.
type publisher struct {
	c       *client.Client
	channel string

	mu      sync.Mutex
	offsets []uint64 // by sequence number; [0] unused
}

func newPublisher(ctx context.Context, t *testing.T, url, channel string, dial dialFunc) *publisher {
	t.Helper()
	c, err := client.Dial(ctx, url, &client.Options{NetDial: dial})
	if err != nil {
		t.Fatalf("publisher: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &publisher{c: c, channel: channel, offsets: []uint64{0}}
}

// fill publishes count messages with sequence number 0, a few at a time.
func (p *publisher) fill(ctx context.Context, count int) error {
	const workers = 8
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := w; i < count; i += workers {
				if _, err := p.c.Publish(ctx, p.channel, payload{N: 0, T: time.Now().UnixNano()}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range workers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// run publishes one message every period until the deadline and returns
// how many it published.
func (p *publisher) run(ctx context.Context, period time.Duration, until time.Time) (int, error) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	n := 0
	for time.Now().Before(until) {
		n++
		off, err := p.c.Publish(ctx, p.channel, payload{N: n, T: time.Now().UnixNano()})
		if err != nil {
			return n - 1, fmt.Errorf("publish %d: %w", n, err)
		}
		p.mu.Lock()
		p.offsets = append(p.offsets, off)
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-tick.C:
		}
	}
	return n, nil
}

func (p *publisher) offset(n int) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n < 1 || n >= len(p.offsets) {
		return 0
	}
	return p.offsets[n]
}
