package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// PublishConfig is the publish scenario: Publishers connections publishing
// Size-byte payloads for Duration, each to its own channel (or all to one
// with SameChannel), with nobody subscribed: it measures the publish path
// and the broker.
type PublishConfig struct {
	Target
	Channel     string // channel, or prefix of the per-publisher channels
	SameChannel bool
	Publishers  int
	Size        int
	Rate        float64 // publications per second, all publishers together; 0: as fast as replies allow
	Inflight    int     // per publisher; default: see defaultInflight
	Duration    time.Duration
}

// PublishResult is what the publish scenario measured.
type PublishResult struct {
	Scenario        string   `json:"scenario"`
	Publishers      int      `json:"publishers"`
	PayloadBytes    int      `json:"payload_bytes"`
	Rate            float64  `json:"rate"`
	Inflight        int      `json:"inflight"`
	Elapsed         Millis   `json:"elapsed_ms"`
	Published       uint64   `json:"published"`
	Errors          uint64   `json:"errors"`
	PublishedPerSec float64  `json:"published_per_s"`
	AckLatency      Latency  `json:"ack_latency"`
	ServerCPU       *CPUUse  `json:"server_cpu,omitempty"`
	ServerCPUPerMsg *float64 `json:"server_cpu_us_per_publish,omitempty"`
	LoadCPU         CPUUse   `json:"load_cpu"`
	LastError       string   `json:"last_error,omitempty"`
}

// Publish runs the publish scenario.
func Publish(ctx context.Context, c PublishConfig) (*PublishResult, error) {
	c.Publishers = max(c.Publishers, 1)
	c.Inflight = defaultInflight(c.Inflight, c.Rate)
	if c.Channel == "" {
		c.Channel = "bench:publish"
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	var acks Histogram
	conns, err := dialAll(ctx, c.Target, c.Publishers, 50, 4<<10, nil)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	pubs := make([]*publisher, len(conns))
	for i, cn := range conns {
		ch := c.Channel
		if !c.SameChannel {
			ch += "-" + strconv.Itoa(i+1)
		}
		pubs[i] = newPublisher(cn, ch, c.Size, c.Inflight, &acks)
	}
	stop := make(chan struct{})
	go progress(c.Progress, time.Second, stop, func(el time.Duration) string {
		n, e := publishTotals(pubs)
		return fmt.Sprintf("published %s (%s), %d errors", count(n), rate(float64(n)/el.Seconds()), e)
	})
	start := time.Now()
	cpu := startCPU(c.ServerPID)
	errs := make([]error, len(pubs))
	var wg sync.WaitGroup
	for i, p := range pubs {
		wg.Go(func() {
			errs[i] = pace(ctx, start.Add(c.Duration), c.Rate/float64(len(pubs)), func(seq uint64, stamp time.Time) error {
				return p.publish(ctx, seq, stamp)
			})
			if errs[i] == nil {
				errs[i] = p.wait(10 * time.Second)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	self, server, cpuErr := cpu.stop()
	close(stop)
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	n, e := publishTotals(pubs)
	r := &PublishResult{Scenario: "publish", Publishers: len(pubs), PayloadBytes: c.Size, Rate: c.Rate, Inflight: c.Inflight,
		Elapsed: Millis(elapsed), Published: n, Errors: e, PublishedPerSec: float64(n) / elapsed.Seconds(),
		AckLatency: acks.Summary(), LoadCPU: self}
	for _, p := range pubs {
		if t := p.errorText(); t != "" {
			r.LastError = t
		}
	}
	if c.ServerPID != 0 {
		if cpuErr != nil {
			return nil, fmt.Errorf("server pid %d: %w", c.ServerPID, cpuErr)
		}
		per := perMessage(time.Duration(server.CPU), n)
		r.ServerCPU, r.ServerCPUPerMsg = &server, &per
	}
	return r, nil
}

func publishTotals(pubs []*publisher) (acked, failed uint64) {
	for _, p := range pubs {
		acked += p.acked.Load()
		failed += p.failed.Load()
	}
	return acked, failed
}

// Table returns the summary rows.
func (r *PublishResult) Table() []Row {
	rows := []Row{
		{"publishers", fmt.Sprintf("%d, %d in flight each", r.Publishers, r.Inflight)},
		{"payload", fmt.Sprintf("%d B", r.PayloadBytes)},
		{"rate", rateSetting(r.Rate)},
		{"elapsed", Millis(r.Elapsed).String()},
		{"published", count(r.Published)},
		{"published/s", rate(r.PublishedPerSec)},
		{"errors", count(r.Errors)},
		latencyRow("ack latency", r.AckLatency),
	}
	if r.ServerCPU != nil {
		rows = append(rows, cpuRow("server CPU", *r.ServerCPU), Row{"server CPU/publish", fmt.Sprintf("%.2f µs", *r.ServerCPUPerMsg)})
	}
	rows = append(rows, loadCPURow(r.LoadCPU))
	if r.LastError != "" {
		rows = append(rows, Row{"last error", r.LastError})
	}
	return rows
}
