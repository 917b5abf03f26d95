package doctor

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// sentinelEvery is how often a sentinel connection pings the server, so
// that no idle timeout ends it: only the server going down does.
const sentinelEvery = 250 * time.Millisecond

// atOnce is how close together two connections must end to count as
// ended by one event.
const atOnce = 250 * time.Millisecond

// settle is how long the doctor waits after a probe for a dying server's
// other connections to end.
const settle = 100 * time.Millisecond

var sentinelPayload = []byte("herald doctor sentinel")

// sentinel is a connection that does nothing but stay alive: it pings the
// server every sentinelEvery and answers its pings. When it ends, the
// server (or everything between) went away.
type sentinel struct {
	c    *conn
	quit chan struct{}
	done chan struct{}
	// lost and how say when and how the server ended the connection;
	// zero while it lives or when the doctor ended it. Read after done.
	lost time.Time
	how  string
}

// startSentinel connects (the upgrade alone, no welcome awaited) and keeps
// the connection alive until stop.
func (d *doctor) startSentinel() (*sentinel, error) {
	c, err := d.dial(false)
	if err != nil {
		return nil, err
	}
	s := &sentinel{c: c, quit: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s, nil
}

func (s *sentinel) run() {
	defer close(s.done)
	nextPing := time.Now().Add(sentinelEvery)
	for {
		f, err := s.c.next(nextPing)
		select {
		case <-s.quit:
			return
		default:
		}
		switch {
		case err == errTimeout:
			s.c.write(ws.OpPing, sentinelPayload)
			nextPing = nextPing.Add(sentinelEvery)
		case ended(err):
			s.lost, s.how = s.c.lostAt(), describeEnd(err)
			return
		case err != nil:
			return // interrupted
		case f.op == ws.OpPing:
			s.c.write(ws.OpPong, f.payload)
		case f.op == ws.OpClose:
			code, reason := f.closeCode()
			s.lost, s.how = f.at, fmt.Sprintf("closed with %d %q", code, reason)
			return
		}
	}
}

// waitLost waits up to t for the server to end the sentinel and reports
// whether it did.
func (s *sentinel) waitLost(t time.Duration) bool {
	select {
	case <-s.done:
		return !s.lost.IsZero()
	case <-time.After(t):
		return false
	}
}

// stop closes the connection and returns when the server had ended it
// before, or the zero time.
func (s *sentinel) stop() time.Time {
	if s == nil {
		return time.Time{}
	}
	close(s.quit)
	s.c.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "herald doctor"))
	s.c.Close()
	<-s.done
	return s.lost
}

// together reports whether a connection lost at t ended with the sentinel
// lost at lost: both within atOnce.
func together(t, lost time.Time) bool {
	if t.IsZero() || lost.IsZero() {
		return false
	}
	gap := t.Sub(lost)
	return gap < atOnce && gap > -atOnce
}

// event is something the doctor did that a server could die of.
type event struct {
	at   time.Time
	what string // completes "right after ...": "it received a frame with reserved opcode 0x3"
	// cause and hint explain an outage right after the event; empty when
	// the event is something every client does.
	cause, hint string
}

// journal records the doctor's events, so an outage can name the one that
// preceded it. Safe for concurrent use.
type journal struct {
	mu     sync.Mutex
	events []event
}

func (j *journal) note(e event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e.at = time.Now()
	j.events = append(j.events, e)
}

// before returns the last event before t.
func (j *journal) before(t time.Time) (event, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i := len(j.events) - 1; i >= 0; i-- {
		if !j.events[i].at.After(t) {
			return j.events[i], true
		}
	}
	return event{}, false
}

// outage is the server going away: it stopped accepting connections, or
// dropped every connection at once.
type outage struct {
	at      time.Time // when it was first seen
	after   event     // what the doctor did last before it; zero when nothing
	stopped error     // why a fresh connection failed; nil when one succeeded
	dropped bool      // the doctor's other connections ended at once
	right   bool      // seen by the liveness probe right after the event
}

// wentDown records an outage, naming the doctor's last event before it
// when that came at most within before it.
func (d *doctor) wentDown(o outage, within time.Duration) {
	if e, ok := d.journal.before(o.at); ok && o.at.Sub(e.at) <= within {
		o.after = e
	}
	d.outages = append(d.outages, o)
}

// upgrade probes liveness with a fresh connection, the upgrade alone, and
// returns why it failed.
func (d *doctor) upgrade() error {
	c, err := d.dial(false)
	if err != nil {
		return err
	}
	c.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "herald doctor"))
	c.Close()
	return nil
}

// down reports whether the server stopped accepting connections.
func (d *doctor) down() bool {
	for _, o := range d.outages {
		if o.stopped != nil {
			return true
		}
	}
	return false
}

// guarded runs one probe that could crash the server between two liveness
// probes: a sentinel connection opened before it and kept alive through
// it, and a fresh upgrade after it. When the server stopped accepting
// connections, or dropped the sentinel with the probe's connection, it
// records an outage and fails the step; probes after an outage that
// stopped the server are not sent.
func (d *doctor) guarded(p badProbe) step {
	if d.down() {
		return step{Inconclusive, p.label + " -> not sent: the server was down", ""}
	}
	s, err := d.startSentinel()
	if err != nil {
		if ic, ok := d.interrupted("liveness"); ok {
			return step{ic.Status, p.label + " -> interrupted", ""}
		}
		d.wentDown(outage{at: time.Now(), stopped: err}, time.Hour)
		return step{Inconclusive, p.label + " -> not sent: the server was down", ""}
	}
	sent := time.Now()
	d.journal.note(event{what: "it received " + p.what, cause: p.cause, hint: p.hint})
	st := p.run()
	s.waitLost(settle)
	lost := s.stop()
	if d.ctx.Err() != nil {
		return st
	}
	o := outage{at: time.Now(), dropped: !lost.IsZero() && lost.After(sent), right: true, stopped: d.upgrade()}
	if o.stopped == nil && !o.dropped {
		return st
	}
	if o.dropped {
		o.at = lost
	}
	d.wentDown(o, time.Hour)
	st.status, st.hint = Fail, ""
	st.summary += ", and the server went down with it (see liveness)"
	return st
}

// liveness reports the outages, or that the server survived every probe.
func (d *doctor) liveness(probes int) Check {
	ch := Check{Name: "liveness", Status: Pass, Measured: map[string]any{"outages": len(d.outages)}}
	if len(d.outages) == 0 {
		ch.Summary = fmt.Sprintf("accepted a fresh connection after each of the %d bad-input probes and kept its other connections open", probes)
		return ch
	}
	o := d.outages[0]
	ch.Status = Fail
	ch.Measured["stopped_accepting"] = o.stopped != nil
	ch.Measured["dropped_every_connection"] = o.dropped
	if o.after.what != "" {
		ch.Measured["after"] = o.after.what
	}
	var sums, hints []string
	for _, o := range d.outages {
		sums = append(sums, o.String())
		if o.after.hint != "" && !strings.Contains(strings.Join(hints, " "), o.after.hint) {
			hints = append(hints, o.after.hint)
		}
	}
	ch.Summary = strings.Join(sums, "; ")
	ch.Hint = strings.Join(hints, "; ")
	return ch
}

// String says what the server did, after what, and what that suggests.
func (o outage) String() string {
	what := "the server dropped every connection at once"
	if o.stopped != nil {
		what = "the server stopped accepting connections"
	}
	switch {
	case o.after.what == "":
		what += " while the doctor only watched"
	case o.right:
		what += " right after " + o.after.what
	default:
		what += fmt.Sprintf(" %s after %s", human(o.at.Sub(o.after.at)), o.after.what)
	}
	if o.after.cause != "" {
		what += ": " + o.after.cause
	}
	switch {
	case o.stopped == nil:
		return what + " (it accepted a fresh connection right after: it restarted, or every connection failed at once)"
	case o.dropped:
		return what + " (it dropped every connection it had at the same moment; a fresh upgrade: " + o.stopped.Error() + ")"
	}
	return what + " (a fresh upgrade: " + o.stopped.Error() + ")"
}
