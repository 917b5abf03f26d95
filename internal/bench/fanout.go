package bench

import (
	"cmp"
	"context"
	"fmt"
	"time"
)

// FanoutConfig is the fanout scenario: Subscribers connections on one
// channel and one publisher sending Size-byte payloads for Duration.
type FanoutConfig struct {
	Target
	// PublishURL, when set, is where the publisher connects: another node
	// of the same cluster than Target.URL, where the subscribers are, so
	// that every publication crosses the broker.
	PublishURL  string
	Channel     string
	Subscribers int
	Size        int           // payload bytes
	Rate        float64       // publications per second; 0: as fast as replies allow
	Inflight    int           // publishes awaiting their reply; default: see defaultInflight
	Duration    time.Duration // of publishing
	Parallel    int           // connections dialled at a time; default 50
	Chat        bool          // payloads are realistic chat JSON, not padding
}

// FanoutResult is what the fanout scenario measured. Elapsed runs from the
// first publish to the last delivery.
type FanoutResult struct {
	Scenario         string   `json:"scenario"`
	Subscribers      int      `json:"subscribers"`
	PayloadBytes     int      `json:"payload_bytes"`
	Rate             float64  `json:"rate"`
	Inflight         int      `json:"inflight"`
	PublishURL       string   `json:"publish_url,omitempty"`
	Elapsed          Millis   `json:"elapsed_ms"`
	Published        uint64   `json:"published"`
	PublishErrors    uint64   `json:"publish_errors"`
	PublishedPerSec  float64  `json:"published_per_s"`
	Delivered        uint64   `json:"delivered"`
	DeliveredPerSec  float64  `json:"delivered_per_s"`
	Lost             uint64   `json:"lost"`
	Duplicated       uint64   `json:"duplicated"`
	OutOfOrder       uint64   `json:"out_of_order"`
	Disconnected     int      `json:"disconnected"`
	Latency          Latency  `json:"latency"`
	AckLatency       Latency  `json:"ack_latency"`
	ServerCPU        *CPUUse  `json:"server_cpu,omitempty"`
	ServerCPUPerMsg  *float64 `json:"server_cpu_us_per_delivered,omitempty"`
	ServerRSS        int64    `json:"server_rss_bytes,omitempty"`
	LoadCPU          CPUUse   `json:"load_cpu"`
	LoadCPUPerMsg    float64  `json:"load_cpu_us_per_delivered"`
	Compression      bool     `json:"compression"`
	WireBytesPerMsg  float64  `json:"wire_bytes_per_delivered"`
	FirstError       string   `json:"first_error,omitempty"`
	PublishLastError string   `json:"publish_last_error,omitempty"`
}

func (c *FanoutConfig) defaults() {
	if c.Channel == "" {
		c.Channel = "bench:fanout"
	}
	c.Subscribers = max(c.Subscribers, 1)
	c.Inflight = defaultInflight(c.Inflight, c.Rate)
	if c.Parallel <= 0 {
		c.Parallel = 50
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
}

// Fanout runs the fanout scenario.
func Fanout(ctx context.Context, c FanoutConfig) (*FanoutResult, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	c.defaults()
	var latency, acks Histogram
	conns, err := dialAll(ctx, c.Target, c.Subscribers, c.Parallel, 16<<10, func(_ int, cn *Conn) error {
		return cn.Subscribe(ctx, c.Channel)
	})
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	subs := make([]*subscriber, len(conns))
	for i, cn := range conns {
		subs[i] = newSubscriber(cn)
		go subs[i].read(c.Channel, &latency)
	}
	pt := c.Target
	pt.URL = cmp.Or(c.PublishURL, c.URL)
	pc, err := Dial(ctx, pt, 16<<10)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	defer pc.Close()
	pub := newPublisher(pc, c.Channel, c.Size, c.Inflight, &acks)
	pub.chat = c.Chat

	stop := make(chan struct{})
	start := time.Now()
	go progress(c.Progress, time.Second, stop, func(el time.Duration) string {
		t := totals(subs)
		return fmt.Sprintf("published %s  delivered %s (%s)  disconnected %d", count(pub.acked.Load()),
			count(t.distinct), rate(float64(t.distinct)/el.Seconds()), t.failed)
	})
	cpu := startCPU(c.ServerPID)
	err = pace(ctx, start.Add(c.Duration), c.Rate, func(seq uint64, stamp time.Time) error {
		return pub.publish(ctx, seq, stamp)
	})
	if err == nil {
		err = pub.wait(10 * time.Second)
	}
	published := pub.acked.Load()
	end := drain(subs, published*uint64(len(subs)), 3*time.Second)
	self, server, cpuErr := cpu.stop()
	close(stop)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	r := fanoutResult(c, subs, pub, end.Sub(start), self)
	if c.ServerPID != 0 {
		if cpuErr != nil {
			return nil, fmt.Errorf("server pid %d: %w", c.ServerPID, cpuErr)
		}
		r.ServerCPU = &server
		per := perMessage(time.Duration(server.CPU), r.Delivered)
		r.ServerCPUPerMsg = &per
		if st, err := ReadProc(c.ServerPID); err == nil {
			r.ServerRSS = st.RSS
		}
	}
	r.Latency, r.AckLatency = latency.Summary(), acks.Summary()
	return r, nil
}

// drain waits until the subscribers received want messages, or until no
// message arrived for quiet. It returns when the last message arrived.
func drain(subs []*subscriber, want uint64, quiet time.Duration) time.Time {
	last, lastChange := uint64(0), time.Now()
	for {
		t := totals(subs)
		if t.distinct != last {
			last, lastChange = t.distinct, time.Now()
		}
		if t.distinct >= want || time.Since(lastChange) > quiet {
			return lastChange
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fanoutResult(c FanoutConfig, subs []*subscriber, pub *publisher, elapsed time.Duration, self CPUUse) *FanoutResult {
	t := totals(subs)
	published := pub.acked.Load()
	want := published * uint64(len(subs))
	r := &FanoutResult{
		Scenario: "fanout", Subscribers: len(subs), PayloadBytes: c.Size, Rate: c.Rate, Inflight: c.Inflight, PublishURL: c.PublishURL,
		Elapsed: Millis(elapsed), Published: published, PublishErrors: pub.failed.Load(),
		PublishedPerSec: float64(published) / elapsed.Seconds(),
		Delivered:       t.distinct, DeliveredPerSec: float64(t.distinct) / elapsed.Seconds(),
		Duplicated: t.dups, OutOfOrder: t.outOfOrder, Disconnected: t.failed,
		LoadCPU: self, LoadCPUPerMsg: perMessage(time.Duration(self.CPU), t.distinct),
		PublishLastError: pub.errorText(), Compression: c.Compression,
	}
	var wire int64
	for _, s := range subs {
		wire += s.conn.WireBytes.Load()
	}
	if t.received > 0 {
		r.WireBytesPerMsg = float64(wire) / float64(t.received)
	}
	if want > t.distinct {
		r.Lost = want - t.distinct
	}
	if t.firstErr != nil {
		r.FirstError = t.firstErr.Error()
	}
	return r
}

// perMessage returns µs of d per message.
func perMessage(d time.Duration, n uint64) float64 {
	if n == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(n)
}

// Table returns the summary rows.
func (r *FanoutResult) Table() []Row {
	rows := []Row{
		{"subscribers", count(r.Subscribers)},
		{"payload", fmt.Sprintf("%d B", r.PayloadBytes)},
		{"rate", fmt.Sprintf("%s, %d in flight", rateSetting(r.Rate), r.Inflight)},
	}
	if r.PublishURL != "" {
		rows = append(rows, Row{"publisher on", r.PublishURL})
	}
	rows = append(rows, []Row{
		{"elapsed", Millis(r.Elapsed).String()},
		{"published", fmt.Sprintf("%s (%s), %d errors", count(r.Published), rate(r.PublishedPerSec), r.PublishErrors)},
		{"delivered", count(r.Delivered)},
		{"delivered/s", rate(r.DeliveredPerSec)},
		{"bytes on the wire", fmt.Sprintf("%.0f B per delivered message (compression %v)", r.WireBytesPerMsg, r.Compression)},
		{"lost", count(r.Lost)},
		{"duplicated", count(r.Duplicated)},
		{"out of order", count(r.OutOfOrder)},
		{"disconnected", count(r.Disconnected)},
		latencyRow("latency", r.Latency),
		latencyRow("publish ack", r.AckLatency),
	}...)
	if r.ServerCPU != nil {
		rows = append(rows, cpuRow("server CPU", *r.ServerCPU),
			Row{"server CPU/delivered", fmt.Sprintf("%.2f µs", *r.ServerCPUPerMsg)},
			Row{"server RSS", fmt.Sprintf("%.1f MiB", float64(r.ServerRSS)/(1<<20))})
	}
	rows = append(rows, loadCPURow(r.LoadCPU), Row{"load CPU/delivered", fmt.Sprintf("%.2f µs", r.LoadCPUPerMsg)})
	if r.FirstError != "" {
		rows = append(rows, Row{"first error", r.FirstError})
	}
	if r.PublishLastError != "" {
		rows = append(rows, Row{"publish errors", r.PublishLastError})
	}
	return rows
}

func rateSetting(r float64) string {
	if r == 0 {
		return "max (as fast as replies allow)"
	}
	return rate(r)
}
