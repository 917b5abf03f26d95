// Package doctor checks a live WebSocket endpoint, Herald's or anyone's,
// against what real-time clients need: a clean handshake, server pings often
// enough for proxies, dead peers dropped, a proper close handshake and, for
// Herald, welcome and recovery across reconnects; then, last, invalid input
// answered instead of killing the connection, and the server still alive
// after it.
//
// Run drives every check and returns a Report; it works at frame level, so it
// can stop answering pings and send frames a well-behaved client never would.
// Those frames can crash a careless server, so Run sends them only after the
// other checks concluded, and probes liveness before and after each: a
// connection that ends because the whole server went down is evidence about
// the server, not about the check that held it.
package doctor

import (
	"context"
	"crypto/tls"
	"net/http"
	"sync"
	"time"
)

// Status is the outcome of one check.
type Status string

// The outcomes of a check, from best to worst. Skip means the check could
// not run (the handshake failed, or Run was interrupted). Inconclusive means
// it ran but did not see enough to judge: its connection was lost to
// something else, or the run was too short for what it waits for.
const (
	Pass         Status = "pass"
	Skip         Status = "skip"
	Inconclusive Status = "inconclusive"
	Warn         Status = "warn"
	Fail         Status = "fail"
)

var severity = map[Status]int{Pass: 0, Skip: 1, Inconclusive: 2, Warn: 3, Fail: 4}

// worse returns the worse of two statuses.
func worse(a, b Status) Status {
	if severity[b] > severity[a] {
		return b
	}
	return a
}

// Check is the result of one check: its outcome, one line saying what was
// measured, a plain-language hint for a warning or failure, and the measured
// values (durations in milliseconds) for machines.
type Check struct {
	Name     string         `json:"name"`
	Status   Status         `json:"status"`
	Summary  string         `json:"summary"`
	Hint     string         `json:"hint,omitempty"`
	Measured map[string]any `json:"measured,omitempty"`
}

// Report is the outcome of Run, one Check per line in the order they ran:
// handshake, heartbeat, pong, dead-peer, close, reconnect (when asked for),
// validation and liveness.
type Report struct {
	URL string `json:"url"`
	// Herald is true when the endpoint negotiated herald.v1 or sent a
	// welcome frame; the Herald-specific checks ran only then.
	Herald    bool    `json:"herald"`
	Checks    []Check `json:"checks"`
	ElapsedMS float64 `json:"elapsed_ms"`
}

// Failed reports whether any check failed.
func (r Report) Failed() bool {
	for _, c := range r.Checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// Count returns how many checks ended with status s.
func (r Report) Count(s Status) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == s {
			n++
		}
	}
	return n
}

// Options configure Run. The zero value of every field means its default; a
// nil *Options means all defaults.
type Options struct {
	// Duration is how long the doctor watches. The heartbeat and dead-peer
	// checks wait on parallel connections for up to all of it; the close
	// and reconnect checks run meanwhile. The validation probes run after
	// it, each wait bounded by Timeout. Default 90 s, enough to see two
	// pings and a dead-peer drop from a server that pings every 25 s.
	Duration time.Duration

	// Subprotocols are offered in the upgrade. nil means "herald.v1"; an
	// empty, non-nil slice offers none.
	Subprotocols []string

	// Header is added to every upgrade request, e.g. Authorization.
	Header http.Header

	// TLSConfig is used for wss:// URLs and the HTTPS probe of the same
	// port. nil means the system roots.
	TLSConfig *tls.Config

	// Reconnect is how many times the reconnection check drops the
	// connection and reconnects. Zero skips the check.
	Reconnect int

	// IdleTimeout is the proxy idle timeout the ping interval is judged
	// against: a silence longer than it fails, longer than 5/6 of it warns.
	// Default 60 s, the idle timeout of common proxies and load balancers.
	IdleTimeout time.Duration

	// Timeout bounds each single wait for an answer: the upgrade, a reply,
	// a pong, the close echo. Default 5 s.
	Timeout time.Duration
}

// Subprotocol is the subprotocol of Herald's wire protocol.
const Subprotocol = "herald.v1"

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Duration <= 0 {
		c.Duration = 90 * time.Second
	}
	if c.Subprotocols == nil {
		c.Subprotocols = []string{Subprotocol}
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	return c
}

// doctor holds one run's settings and what the handshake learned.
type doctor struct {
	ctx      context.Context
	url      string
	opts     Options
	deadline time.Time // end of the current phase's budget
	herald   bool
	welcome  *reply // Herald's welcome, when one arrived
	journal  journal
	outages  []outage // written by one goroutine at a time, between phases
}

// Run checks the WebSocket endpoint at url (ws:// or wss://) and returns the
// report. It returns early, with the checks still running marked skipped or
// not concluded, when ctx ends.
//
// It runs in three phases: the handshake; then, for up to Duration, the
// checks a well-behaved client's traffic makes (heartbeat, pong, dead-peer,
// close, reconnect), beside a sentinel connection that only an outage of
// the whole server ends; then the validation probes, each between two
// liveness probes, and the liveness finding.
func Run(ctx context.Context, url string, opts *Options) Report {
	start := time.Now()
	d := &doctor{ctx: ctx, url: url, opts: opts.withDefaults()}
	d.deadline = start.Add(d.opts.Duration)
	rep := Report{URL: url}

	hs := d.handshake()
	rep.Herald = d.herald
	rep.Checks = append(rep.Checks, hs)
	if hs.Status == Fail {
		for _, name := range []string{"heartbeat", "pong", "dead-peer", "close", "reconnect", "validation", "liveness"} {
			if name != "reconnect" || d.opts.Reconnect > 0 {
				rep.Checks = append(rep.Checks, skipped(name, "not run: the handshake failed"))
			}
		}
		rep.ElapsedMS = ms(time.Since(start))
		return rep
	}
	rep.Checks = append(rep.Checks, d.watch()...)

	// Each wait of the probes is bounded by Timeout, not by Duration.
	d.deadline = time.Now().Add(time.Hour)
	validation, liveness := d.validation()
	rep.Checks = append(rep.Checks, validation, liveness)
	rep.ElapsedMS = ms(time.Since(start))
	return rep
}

// watch runs the checks of ordinary client traffic in parallel beside a
// sentinel connection, and judges them once all ended: a connection lost
// when the sentinel was lost went down with the whole server, which the
// checks report as not concluded and the liveness check as an outage.
func (d *doctor) watch() []Check {
	s, _ := d.startSentinel() // when it fails, the first liveness probe will tell
	var (
		hb              heartbeatWatch
		dead            deadWatch
		closing, reconn Check
		closeLost       time.Time
		wg              sync.WaitGroup
	)
	wg.Go(func() { hb = d.watchHeartbeat() })
	wg.Go(func() { dead = d.watchDeadPeer() })
	wg.Go(func() {
		closing, closeLost = d.close()
		if d.opts.Reconnect > 0 {
			reconn = d.reconnect()
		}
	})
	wg.Wait()
	lost := s.stop()
	if !lost.IsZero() && d.ctx.Err() == nil {
		o := outage{at: lost, stopped: d.upgrade()}
		o.dropped = together(hb.lostAt, lost) || together(dead.lostAt, lost) || together(closeLost, lost)
		if o.dropped || o.stopped != nil {
			d.wentDown(o, time.Second)
		} else {
			lost = time.Time{} // the sentinel alone: no outage
		}
	}
	if together(closeLost, lost) {
		closing.Status, closing.Hint = Inconclusive, ""
		closing.Summary += ", when every connection to the server ended (see liveness)"
	}
	checks := []Check{d.judgeHeartbeat(hb, lost), d.judgePong(hb, lost), d.judgeDeadPeer(dead, hb, lost), closing}
	if d.opts.Reconnect > 0 {
		checks = append(checks, reconn)
	}
	return checks
}

// wait returns the deadline of a wait of d: now+d, but never past the end
// of the budget.
func (d *doctor) wait(t time.Duration) time.Time {
	end := time.Now().Add(t)
	if end.After(d.deadline) {
		return d.deadline
	}
	return end
}

// interrupted returns the check result for a check cut short by ctx, or
// false when ctx is still live.
func (d *doctor) interrupted(name string) (Check, bool) {
	if d.ctx.Err() == nil {
		return Check{}, false
	}
	return skipped(name, "interrupted"), true
}

func skipped(name, why string) Check {
	return Check{Name: name, Status: Skip, Summary: why}
}

func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
