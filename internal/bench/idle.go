package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// IdleConfig is the idle scenario: Connections connections, each subscribed
// to Channel (none when empty; "{i}" in it is the connection's number, for a
// channel each), held open for Hold while the server pings them.
type IdleConfig struct {
	Target
	Connections int
	Channel     string
	// Hold is how long the connections stay open; 0 means two ping
	// intervals plus the pong timeout, as the server's welcome gives them,
	// so that every connection goes through at least two heartbeat rounds.
	Hold     time.Duration
	Parallel int // connections dialled at a time; default 50
}

// IdleResult is what the idle scenario measured. RSS figures are the
// server's, with ServerPID set.
type IdleResult struct {
	Scenario        string  `json:"scenario"`
	Connections     int     `json:"connections"`
	Hold            Millis  `json:"hold_ms"`
	Survived        int     `json:"survived"`
	PingsMin        int64   `json:"pings_min"`
	PingsMedian     int64   `json:"pings_median"`
	ServerRSSBefore int64   `json:"server_rss_before_bytes,omitempty"`
	ServerRSSAfter  int64   `json:"server_rss_after_bytes,omitempty"`
	RSSPerConn      float64 `json:"server_rss_per_connection_bytes,omitempty"`
	ServerCPU       *CPUUse `json:"server_cpu,omitempty"`
	// ServerCPUPerConn is the server's CPU time per connection per second
	// of the hold, in µs: what an idle connection costs.
	ServerCPUPerConn *float64 `json:"server_cpu_us_per_connection_s,omitempty"`
	// From the server's /metrics, when it serves Go runtime metrics: the
	// growth per connection of goroutines, heap in use and stacks in use.
	GoroutinesPerConn *float64 `json:"server_goroutines_per_connection,omitempty"`
	HeapPerConn       *float64 `json:"server_heap_inuse_per_connection_bytes,omitempty"`
	StackPerConn      *float64 `json:"server_stack_inuse_per_connection_bytes,omitempty"`
	LoadRSS           int64    `json:"load_rss_bytes"`
	LoadCPU           CPUUse   `json:"load_cpu"`
	FirstError        string   `json:"first_error,omitempty"`
}

// Idle runs the idle scenario.
func Idle(ctx context.Context, c IdleConfig) (*IdleResult, error) {
	c.Connections = max(c.Connections, 1)
	if c.Parallel <= 0 {
		c.Parallel = 50
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	var before ProcStat
	goBefore, goErr := scrapeGoMetrics(c.URL)
	if c.ServerPID != 0 {
		var err error
		if before, err = ReadProc(c.ServerPID); err != nil {
			return nil, fmt.Errorf("server pid %d: %w", c.ServerPID, err)
		}
	}
	conns, err := dialAll(ctx, c.Target, c.Connections, c.Parallel, 512, func(i int, cn *Conn) error {
		if c.Channel == "" {
			return nil
		}
		return cn.Subscribe(ctx, idleChannel(c.Channel, i))
	})
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	subs := make([]*subscriber, len(conns))
	var latency Histogram
	for i, cn := range conns {
		subs[i] = newSubscriber(cn)
		go subs[i].read(idleChannel(c.Channel, i), &latency)
	}
	hold := c.Hold
	if hold <= 0 {
		w := conns[0].Welcome
		hold = time.Duration(2*w.PingIntervalMS+w.PongTimeoutMS) * time.Millisecond
	}
	cpu := startCPU(c.ServerPID)
	stop := make(chan struct{})
	go progress(c.Progress, time.Second, stop, func(el time.Duration) string {
		t := totals(subs)
		return fmt.Sprintf("holding %s connections: %s of %s, %d closed, median pings %d", count(len(conns)),
			(el - el%time.Second).String(), hold, t.failed, pingsMedian(conns))
	})
	select {
	case <-ctx.Done():
	case <-time.After(hold):
	}
	close(stop)
	self, server, cpuErr := cpu.stop()
	r := idleResult(c, conns, subs, hold, before, self, server, cpuErr)
	if goAfter, err := scrapeGoMetrics(c.URL); err == nil && goErr == nil {
		n := float64(len(conns))
		g, h, st := (goAfter.goroutines-goBefore.goroutines)/n, (goAfter.heapInuse-goBefore.heapInuse)/n, (goAfter.stackInuse-goBefore.stackInuse)/n
		r.GoroutinesPerConn, r.HeapPerConn, r.StackPerConn = &g, &h, &st
	}
	return r, ctx.Err()
}

// idleChannel is connection i's channel: "{i}" in channel is replaced by i.
func idleChannel(channel string, i int) string {
	return strings.ReplaceAll(channel, "{i}", strconv.Itoa(i))
}

func idleResult(c IdleConfig, conns []*Conn, subs []*subscriber, hold time.Duration, before ProcStat, self, server CPUUse, cpuErr error) *IdleResult {
	t := totals(subs)
	pings := make([]int64, len(conns))
	for i, cn := range conns {
		pings[i] = cn.Pings.Load()
	}
	slices.Sort(pings)
	r := &IdleResult{Scenario: "idle", Connections: len(conns), Hold: Millis(hold), Survived: len(conns) - t.failed,
		PingsMin: pings[0], PingsMedian: pings[len(pings)/2], LoadCPU: self}
	if st, err := ReadProc(os.Getpid()); err == nil {
		r.LoadRSS = st.RSS
	}
	if c.ServerPID != 0 && cpuErr == nil {
		r.ServerCPU = &server
		per := server.CoreUsed * 1e6 / float64(len(conns))
		r.ServerCPUPerConn = &per
		if after, err := ReadProc(c.ServerPID); err == nil {
			r.ServerRSSBefore, r.ServerRSSAfter = before.RSS, after.RSS
			r.RSSPerConn = float64(after.RSS-before.RSS) / float64(len(conns))
		}
	}
	if t.firstErr != nil {
		r.FirstError = t.firstErr.Error()
	}
	return r
}

func pingsMedian(conns []*Conn) int64 {
	pings := make([]int64, len(conns))
	for i, cn := range conns {
		pings[i] = cn.Pings.Load()
	}
	slices.Sort(pings)
	return pings[len(pings)/2]
}

// Table returns the summary rows.
func (r *IdleResult) Table() []Row {
	rows := []Row{
		{"connections", count(r.Connections)},
		{"held", Millis(r.Hold).String()},
		{"survived", fmt.Sprintf("%s of %s", count(r.Survived), count(r.Connections))},
		{"pings per connection", fmt.Sprintf("min %d, median %d", r.PingsMin, r.PingsMedian)},
	}
	if r.ServerCPU != nil {
		rows = append(rows,
			Row{"server RSS", fmt.Sprintf("%.1f MiB before, %.1f MiB after", float64(r.ServerRSSBefore)/(1<<20), float64(r.ServerRSSAfter)/(1<<20))},
			Row{"server RSS/connection", kib(r.RSSPerConn)},
			cpuRow("server CPU", *r.ServerCPU),
			Row{"server CPU/connection", fmt.Sprintf("%.2f µs per second", *r.ServerCPUPerConn)})
	}
	if r.HeapPerConn != nil {
		rows = append(rows, Row{"server Go/connection", fmt.Sprintf("%.2f goroutines, heap %s, stacks %s",
			*r.GoroutinesPerConn, kib(*r.HeapPerConn), kib(*r.StackPerConn))})
	}
	rows = append(rows, Row{"load RSS", fmt.Sprintf("%.1f MiB", float64(r.LoadRSS)/(1<<20))}, loadCPURow(r.LoadCPU))
	if r.FirstError != "" {
		rows = append(rows, Row{"first error", r.FirstError})
	}
	return rows
}
