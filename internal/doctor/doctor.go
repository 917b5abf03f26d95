// Package doctor checks a live WebSocket endpoint, Herald's or anyone's,
// against what real-time clients need: a clean handshake, server pings often
// enough for proxies, dead peers dropped, invalid input answered instead of
// killing the connection, a proper close handshake and, for Herald, welcome
// and recovery across reconnects.
//
// Run drives every check and returns a Report; it works at frame level, so it
// can stop answering pings and send frames a well-behaved client never would.
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
// not run (the handshake failed, or Run was interrupted).
const (
	Pass Status = "pass"
	Skip Status = "skip"
	Warn Status = "warn"
	Fail Status = "fail"
)

var severity = map[Status]int{Pass: 0, Skip: 1, Warn: 2, Fail: 3}

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

// Report is the outcome of Run, one Check per line in the order the checks
// are listed in the package documentation.
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
	// Duration is the time budget of the whole run. The heartbeat and
	// dead-peer checks wait on parallel connections for up to all of it;
	// the other checks run meanwhile. Default 90 s, enough to see two pings
	// and a dead-peer drop from a server that pings every 25 s.
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
	deadline time.Time // end of the budget
	herald   bool
	welcome  *reply // Herald's welcome, when one arrived
}

// Run checks the WebSocket endpoint at url (ws:// or wss://) and returns the
// report. It returns early, with the checks still running marked skipped or
// failed, when ctx ends.
func Run(ctx context.Context, url string, opts *Options) Report {
	start := time.Now()
	d := &doctor{ctx: ctx, url: url, opts: opts.withDefaults()}
	d.deadline = start.Add(d.opts.Duration)
	rep := Report{URL: url}

	hs := d.handshake()
	rep.Herald = d.herald
	rep.Checks = append(rep.Checks, hs)
	if hs.Status == Fail {
		for _, name := range []string{"heartbeat", "pong", "dead-peer", "validation", "close", "reconnect"} {
			if name != "reconnect" || d.opts.Reconnect > 0 {
				rep.Checks = append(rep.Checks, skipped(name, "not run: the handshake failed"))
			}
		}
		rep.ElapsedMS = ms(time.Since(start))
		return rep
	}

	var heartbeat, pong, deadPeer, validation, closing, reconnect Check
	var wg sync.WaitGroup
	wg.Go(func() { heartbeat, pong = d.heartbeat() })
	wg.Go(func() { deadPeer = d.deadPeer() })
	wg.Go(func() {
		validation = d.validation()
		closing = d.close()
		if d.opts.Reconnect > 0 {
			reconnect = d.reconnect()
		}
	})
	wg.Wait()
	rep.Checks = append(rep.Checks, heartbeat, pong, deadPeer, validation, closing)
	if d.opts.Reconnect > 0 {
		rep.Checks = append(rep.Checks, reconnect)
	}
	rep.ElapsedMS = ms(time.Since(start))
	return rep
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
