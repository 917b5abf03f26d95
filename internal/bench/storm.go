package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/bits"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/client"
)

// StormConfig is the storm scenario: Subscribers clients (the Go client,
// which reconnects and recovers) on one channel while a publisher publishes
// Rate messages per second; at DisruptAt the shell command Disrupt runs
// (for example a server restart). It measures how the clients come back.
type StormConfig struct {
	Target
	Channel     string
	Subscribers int
	Size        int
	Rate        float64       // publications per second; default 20
	Duration    time.Duration // of publishing; default 30 s
	DisruptAt   time.Duration // default 5 s
	Disrupt     string        // shell command; empty: no disruption
	Parallel    int           // clients dialled at a time; default 50
}

// StormResult is what the storm scenario measured. Times are from the
// disruption; ClosedFirst and ClosedLast are when the first and the last
// client lost its connection (the server's drain, as the clients saw it);
// ServerBack is when the server answered /healthz again after failing to (0
// when it never failed).
type StormResult struct {
	Scenario       string `json:"scenario"`
	Subscribers    int    `json:"subscribers"`
	Published      uint64 `json:"published"`
	PublishErrors  uint64 `json:"publish_errors"`
	Disconnected   int    `json:"disconnected"`
	Back           int    `json:"back"`
	ClosedFirst    Millis `json:"closed_first_ms"`
	ClosedLast     Millis `json:"closed_last_ms"`
	ServerDown     Millis `json:"server_down_ms"`
	ServerBack     Millis `json:"server_back_ms"`
	AllBack        Millis `json:"all_back_ms"`
	AllBackAfterUp Millis `json:"all_back_after_server_back_ms"`
	// BackAfterUp is when the clients were back, from when the server
	// answered again: p50, p99, p99.9, max.
	BackAfterUp    Latency        `json:"back_after_server_back"`
	Failures       map[string]int `json:"disconnect_reasons"`
	Attempts       int            `json:"attempts"`
	PeakAttempts   int            `json:"peak_attempts_per_100ms"`
	AttemptsPer100 []int          `json:"attempts_per_100ms"`
	Lost           uint64         `json:"lost"`
	Duplicated     uint64         `json:"duplicated"`
	RecoveredTrue  int            `json:"recovered_true"`
	RecoveredFalse int            `json:"recovered_false"`
	// Slowest is what happened to the client that was back last, after
	// the disruption.
	Slowest         []StormEvent `json:"slowest_client,omitempty"`
	DisruptionError string       `json:"disruption_error,omitempty"`
	LoadCPU         CPUUse       `json:"load_cpu"`
}

// StormEvent is a client's state change ("connecting", "connected",
// "disconnected") or its recovery ("recovered"), at a time from the
// disruption.
type StormEvent struct {
	Event string `json:"event"`
	At    Millis `json:"at_ms"`
}

func (c *StormConfig) defaults() {
	if c.Channel == "" {
		c.Channel = "bench:storm"
	}
	c.Subscribers = max(c.Subscribers, 1)
	if c.Rate <= 0 {
		c.Rate = 20
	}
	if c.Duration <= 0 {
		c.Duration = 30 * time.Second
	}
	if c.DisruptAt <= 0 {
		c.DisruptAt = 5 * time.Second
	}
	if c.Parallel <= 0 {
		c.Parallel = 50
	}
}

// storm is one run's shared state.
type storm struct {
	cfg       StormConfig
	disrupted atomic.Int64 // UnixNano of the disruption, 0 before
	mu        sync.Mutex
	attempts  []time.Time    // connection attempts after the disruption
	failures  map[string]int // why connections ended or attempts failed, after it
	subs      []*stormSub
	acked     bitset
}

// stormSub is one subscribing client.
type stormSub struct {
	st     *storm
	client *client.Client
	mu     sync.Mutex
	seen   bitset
	dups   uint64
	// After the disruption:
	disconnectSeen bool
	left           time.Time // the first disconnect
	back           time.Time // the first recovery after the disconnect
	recovered      int
	notRecovered   int
	events         []StormEvent
}

// Storm runs the storm scenario.
func Storm(ctx context.Context, c StormConfig) (*StormResult, error) {
	c.defaults()
	st := &storm{cfg: c, subs: make([]*stormSub, c.Subscribers), failures: make(map[string]int)}
	if err := st.dialAll(ctx); err != nil {
		return nil, err
	}
	defer st.closeAll()
	pubc, err := client.Dial(ctx, c.URL, &client.Options{Token: c.Token, QueueMessages: 100000, QueueBytes: 1 << 30})
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	defer pubc.Close()

	cpu := startCPU(0)
	stop := make(chan struct{})
	go progress(c.Progress, time.Second, stop, st.progressLine)
	start := time.Now()
	health := newHealthPoller(c.URL)
	disrupted := make(chan error, 1)
	time.AfterFunc(c.DisruptAt, func() {
		health.start(start.Add(c.DisruptAt))
		st.disrupted.Store(time.Now().UnixNano())
		disrupted <- runDisruption(ctx, c.Disrupt, c.Progress)
	})
	published, failed := st.publish(ctx, pubc, start.Add(c.Duration))
	derr := <-disrupted
	st.drain(published, 10*time.Second)
	close(stop)
	health.stop()
	self, _, _ := cpu.stop()
	r := st.result(published, failed, health)
	r.LoadCPU = self
	if derr != nil {
		r.DisruptionError = derr.Error()
	}
	return r, nil
}

func runDisruption(ctx context.Context, cmd string, out interface{ Write([]byte) (int, error) }) error {
	if cmd == "" {
		return nil
	}
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	if out != nil {
		c.Stdout, c.Stderr = out, out
	}
	return c.Run()
}

func (st *storm) dialAll(ctx context.Context) error {
	c := st.cfg
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, c.Parallel)
	for range min(c.Parallel, c.Subscribers) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < c.Subscribers; i = int(next.Add(1) - 1) {
				s, err := st.dialOne(ctx)
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i+1, err)
					next.Store(int64(c.Subscribers))
					return
				}
				st.subs[i] = s
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (st *storm) dialOne(ctx context.Context) (*stormSub, error) {
	s := &stormSub{st: st}
	cl, err := client.Dial(ctx, st.cfg.URL, &client.Options{Token: st.cfg.Token, OnStateChange: s.stateChanged})
	if err != nil {
		return nil, err
	}
	s.client = cl
	if _, err := cl.Subscribe(ctx, st.cfg.Channel, s.message, client.OnRecovery(s.recovery)); err != nil {
		cl.Close()
		return nil, err
	}
	return s, nil
}

func (st *storm) closeAll() {
	var wg sync.WaitGroup
	for _, s := range st.subs {
		if s != nil {
			wg.Go(func() { s.client.Close() })
		}
	}
	wg.Wait()
}

func (st *storm) after() (time.Time, bool) {
	ns := st.disrupted.Load()
	return time.Unix(0, ns), ns != 0
}

func (s *stormSub) stateChanged(ch client.StateChange) {
	t0, ok := s.st.after()
	if !ok {
		return
	}
	s.mu.Lock()
	s.events = append(s.events, StormEvent{ch.State.String(), Millis(time.Since(t0))})
	s.mu.Unlock()
	switch ch.State {
	case client.StateConnecting:
		s.st.mu.Lock()
		s.st.attempts = append(s.st.attempts, time.Now())
		s.st.mu.Unlock()
	case client.StateDisconnected:
		s.mu.Lock()
		if !s.disconnectSeen {
			s.disconnectSeen, s.left = true, time.Now()
		}
		s.mu.Unlock()
		s.st.mu.Lock()
		s.st.failures[failureReason(ch.Err)]++
		s.st.mu.Unlock()
	}
}

func (s *stormSub) recovery(r client.Recovery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.disconnectSeen {
		return
	}
	if s.back.IsZero() {
		s.back = time.Now()
		t0, _ := s.st.after()
		s.events = append(s.events, StormEvent{"recovered", Millis(s.back.Sub(t0))})
	}
	if r.Recovered {
		s.recovered++
	} else {
		s.notRecovered++
	}
}

func (s *stormSub) message(m client.Message) {
	seq, ok := parseSeq(m.Data)
	if !ok {
		return
	}
	s.mu.Lock()
	if !s.seen.set(seq) {
		s.dups++
	}
	s.mu.Unlock()
}

// publish publishes at the configured rate until until, each publish in its
// own goroutine so that the schedule holds while the client is
// disconnected (publishes then wait in its offline queue).
func (st *storm) publish(ctx context.Context, c *client.Client, until time.Time) (published, failed uint64) {
	var wg sync.WaitGroup
	var ok, bad atomic.Uint64
	pace(ctx, until, st.cfg.Rate, func(seq uint64, stamp time.Time) error {
		data := appendPayload(nil, seq, stamp, st.cfg.Size)
		wg.Go(func() {
			if _, err := c.Publish(ctx, st.cfg.Channel, json.RawMessage(data)); err != nil {
				bad.Add(1)
				return
			}
			ok.Add(1)
			st.mu.Lock()
			st.acked.set(seq)
			st.mu.Unlock()
		})
		return nil
	})
	wg.Wait()
	return ok.Load(), bad.Load()
}

// drain waits until every subscriber received every acknowledged
// publication, or quiet passed without progress.
func (st *storm) drain(published uint64, quiet time.Duration) {
	last, lastChange := uint64(0), time.Now()
	for time.Since(lastChange) < quiet {
		var n uint64
		for _, s := range st.subs {
			s.mu.Lock()
			n += s.seen.count
			s.mu.Unlock()
		}
		if n >= published*uint64(len(st.subs)) {
			return
		}
		if n != last {
			last, lastChange = n, time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (st *storm) progressLine(time.Duration) string {
	var left, back int
	for _, s := range st.subs {
		s.mu.Lock()
		if s.disconnectSeen {
			left++
		}
		if !s.back.IsZero() {
			back++
		}
		s.mu.Unlock()
	}
	st.mu.Lock()
	attempts := len(st.attempts)
	st.mu.Unlock()
	if _, ok := st.after(); !ok {
		return fmt.Sprintf("%s clients subscribed, waiting to disrupt", count(len(st.subs)))
	}
	return fmt.Sprintf("disconnected %s, back %s, attempts %s", count(left), count(back), count(attempts))
}

// healthPoller watches the server's /healthz from the disruption on, to
// tell when it stopped and started answering.
type healthPoller struct {
	url        string
	done       chan struct{}
	wg         sync.WaitGroup
	mu         sync.Mutex
	down, back time.Time
}

func newHealthPoller(wsURL string) *healthPoller {
	return &healthPoller{url: httpURL(wsURL, "/healthz"), done: make(chan struct{})}
}

// httpURL returns the URL of path on the server of wsURL, or "" when wsURL
// does not parse.
func httpURL(wsURL, path string) string {
	u, err := url.Parse(wsURL)
	if err != nil {
		return ""
	}
	u.Scheme = strings.Replace(u.Scheme, "ws", "http", 1)
	u.Path, u.RawQuery = path, ""
	return u.String()
}

func (h *healthPoller) start(from time.Time) {
	if h.url == "" {
		return
	}
	hc := &http.Client{Timeout: 250 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	h.wg.Go(func() {
		for {
			resp, err := hc.Get(h.url)
			ok := err == nil && resp.StatusCode == http.StatusOK
			if resp != nil {
				resp.Body.Close()
			}
			h.mu.Lock()
			switch {
			case !ok && h.down.IsZero():
				h.down = time.Now()
			case ok && !h.down.IsZero() && h.back.IsZero():
				h.back = time.Now()
			}
			h.mu.Unlock()
			select {
			case <-h.done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
}

func (h *healthPoller) stop() {
	close(h.done)
	h.wg.Wait()
}

func (st *storm) result(published, failed uint64, h *healthPoller) *StormResult {
	t0, _ := st.after()
	r := &StormResult{Scenario: "storm", Subscribers: len(st.subs), Published: published, PublishErrors: failed}
	h.mu.Lock()
	if !h.down.IsZero() {
		r.ServerDown = Millis(h.down.Sub(t0))
	}
	up := t0
	if !h.back.IsZero() {
		up = h.back
		r.ServerBack = Millis(h.back.Sub(t0))
	}
	h.mu.Unlock()
	var lastBack, firstLeft, lastLeft time.Time
	var back Histogram
	for _, s := range st.subs {
		s.mu.Lock()
		if s.disconnectSeen {
			r.Disconnected++
			if firstLeft.IsZero() || s.left.Before(firstLeft) {
				firstLeft = s.left
			}
			if s.left.After(lastLeft) {
				lastLeft = s.left
			}
		}
		if !s.back.IsZero() {
			r.Back++
			back.Record(s.back.Sub(up))
			if s.back.After(lastBack) {
				lastBack, r.Slowest = s.back, slices.Clone(s.events)
			}
		}
		r.RecoveredTrue += s.recovered
		r.RecoveredFalse += s.notRecovered
		r.Duplicated += s.dups
		st.mu.Lock()
		r.Lost += st.acked.missingFrom(&s.seen)
		st.mu.Unlock()
		s.mu.Unlock()
	}
	if !firstLeft.IsZero() {
		r.ClosedFirst, r.ClosedLast = Millis(firstLeft.Sub(t0)), Millis(lastLeft.Sub(t0))
	}
	if !lastBack.IsZero() {
		r.AllBack = Millis(lastBack.Sub(t0))
		r.AllBackAfterUp = Millis(lastBack.Sub(up))
	}
	r.BackAfterUp = back.Summary()
	r.Attempts, r.AttemptsPer100, r.PeakAttempts = st.attemptWindows(t0)
	st.mu.Lock()
	r.Failures = maps.Clone(st.failures)
	st.mu.Unlock()
	return r
}

// attemptWindows counts the attempts in each 100 ms after t0.
func (st *storm) attemptWindows(t0 time.Time) (total int, windows []int, peak int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, a := range st.attempts {
		i := int(a.Sub(t0) / (100 * time.Millisecond))
		for len(windows) <= i {
			windows = append(windows, 0)
		}
		windows[i]++
		peak = max(peak, windows[i])
	}
	return len(st.attempts), windows, peak
}

// Table returns the summary rows.
func (r *StormResult) Table() []Row {
	rows := []Row{
		{"subscribers", count(r.Subscribers)},
		{"published", fmt.Sprintf("%s, %d errors", count(r.Published), r.PublishErrors)},
		{"disconnected", count(r.Disconnected)},
		{"back", count(r.Back)},
		{"connections lost", fmt.Sprintf("first +%s, last +%s", r.ClosedFirst, r.ClosedLast)},
		{"server stopped answering", "+" + Millis(r.ServerDown).String()},
		{"server answering again", "+" + Millis(r.ServerBack).String()},
		{"all back", fmt.Sprintf("+%s (%s after the server answered)", Millis(r.AllBack), Millis(r.AllBackAfterUp))},
		latencyRow("back after it answered", r.BackAfterUp),
		{"connection attempts", fmt.Sprintf("%s, peak %d per 100 ms", count(r.Attempts), r.PeakAttempts)},
		{"lost", count(r.Lost)},
		{"duplicated", count(r.Duplicated)},
		{"recovered", fmt.Sprintf("true %s, false %s", count(r.RecoveredTrue), count(r.RecoveredFalse))},
		{"the client back last", r.slowestLine()},
		loadCPURow(r.LoadCPU),
	}
	reasons := slices.SortedFunc(maps.Keys(r.Failures), func(a, b string) int { return r.Failures[b] - r.Failures[a] })
	for i, why := range reasons {
		if i == 5 {
			rows = append(rows, Row{"", fmt.Sprintf("... %d more reasons", len(reasons)-5)})
			break
		}
		rows = append(rows, Row{"disconnects: " + count(r.Failures[why]), why})
	}
	if r.DisruptionError != "" {
		rows = append(rows, Row{"disruption command", r.DisruptionError})
	}
	return rows
}

func (r *StormResult) slowestLine() string {
	var b strings.Builder
	for i, e := range r.Slowest {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s +%s", e.Event, e.At)
	}
	return b.String()
}

// failureReason is err's text without what varies between connections
// (the local port).
func failureReason(err error) string {
	if err == nil {
		return "no error"
	}
	msg := err.Error()
	if i := strings.Index(msg, "127.0.0.1:"); i >= 0 {
		// "read tcp 127.0.0.1:50412->127.0.0.1:8080: ...": keep the
		// server's address only.
		if j := strings.Index(msg[i:], "->"); j >= 0 {
			msg = msg[:i] + msg[i+j+2:]
		}
	}
	return msg
}

// bitset is a growable set of sequence numbers.
type bitset struct {
	words []uint64
	count uint64
}

// set adds v and reports whether it was new.
func (b *bitset) set(v uint64) bool {
	w := int(v / 64)
	for len(b.words) <= w {
		b.words = append(b.words, 0)
	}
	bit := uint64(1) << (v % 64)
	if b.words[w]&bit != 0 {
		return false
	}
	b.words[w] |= bit
	b.count++
	return true
}

// missingFrom counts the members of b that other lacks.
func (b *bitset) missingFrom(other *bitset) uint64 {
	var n uint64
	for i, w := range b.words {
		if i < len(other.words) {
			w &^= other.words[i]
		}
		n += uint64(popcount(w))
	}
	return n
}

func popcount(w uint64) int { return bits.OnesCount64(w) }
