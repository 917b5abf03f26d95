package doctor

import (
	"bytes"
	"fmt"
	"time"

	"github.com/gobwas/ws"
)

// slowPong is the pong round trip above which the pong check warns.
const slowPong = time.Second

// pingPayload is the application data of the doctor's ping frame.
var pingPayload = []byte("herald doctor")

// heartbeatWatch is what one connection that answers every ping saw.
type heartbeatWatch struct {
	err       error // the connection could not be made
	connected time.Time
	pings     []time.Time
	end       time.Time // when watching stopped
	lost      string    // how the connection ended early, if it did
	lostAt    time.Time // when it ended early
	silence   time.Duration
	closed    bool // it ended with a close frame from the server
	pongRTT   time.Duration
	pongOK    bool // a pong with the ping's payload arrived
	pongOther bool // a pong with another payload arrived
}

// interval returns the mean time between the server's pings, or zero when
// fewer than two arrived.
func (w heartbeatWatch) interval() time.Duration {
	if len(w.pings) < 2 {
		return 0
	}
	return w.pings[len(w.pings)-1].Sub(w.pings[0]) / time.Duration(len(w.pings)-1)
}

// watchHeartbeat watches one connection that answers every ping, until
// three pings (two intervals) arrived or the budget ends. Right after
// connecting it sends a ping frame of its own and times the pong.
func (d *doctor) watchHeartbeat() heartbeatWatch {
	c, err := d.dial(false)
	if err != nil {
		return heartbeatWatch{err: err}
	}
	defer c.Close()
	w := heartbeatWatch{connected: c.upgraded}
	sent := time.Now()
	c.write(ws.OpPing, pingPayload)
	pongDue := sent.Add(d.opts.Timeout)
	pongSettled := false
	last := sent // the last traffic, either way
	for len(w.pings) < 3 || !pongSettled {
		wait := d.deadline
		if !pongSettled && pongDue.Before(wait) {
			wait = pongDue
		}
		f, err := c.next(wait)
		if err == errTimeout && !pongSettled && time.Now().Before(d.deadline) {
			pongSettled = true
			continue
		}
		if err != nil {
			if ended(err) {
				w.lost, w.lostAt = describeEnd(err), c.lostAt()
				w.silence = w.lostAt.Sub(last)
			}
			break
		}
		last = f.at
		switch f.op {
		case ws.OpPing:
			w.pings = append(w.pings, f.at)
			c.write(ws.OpPong, f.payload)
			last = c.lastWrite()
		case ws.OpPong:
			if bytes.Equal(f.payload, pingPayload) && !w.pongOK {
				w.pongOK, w.pongRTT, pongSettled = true, f.at.Sub(sent), true
			} else {
				w.pongOther = true
			}
		case ws.OpClose:
			code, reason := f.closeCode()
			w.lost, w.lostAt, w.closed = fmt.Sprintf("closed with %d %q", code, reason), f.at, true
		}
		if w.lost != "" {
			break
		}
	}
	w.end = time.Now()
	return w
}

// judgeHeartbeat rates the longest silence seen between server pings (from
// the upgrade to the first ping, between pings, and from the last ping to
// the end of watching) against the proxy idle timeout. sentinelLost is
// when every connection went down at once (zero when none did).
func (d *doctor) judgeHeartbeat(w heartbeatWatch, sentinelLost time.Time) Check {
	ch := Check{Name: "heartbeat", Status: Pass, Measured: map[string]any{"pings": len(w.pings)}}
	if w.err != nil {
		return d.noConn(ch.Name, w.err)
	}
	if ic, ok := d.interrupted(ch.Name); ok {
		return ic
	}
	watched := w.end.Sub(w.connected)
	announced := ""
	if d.welcome != nil && d.welcome.PingIntervalMS > 0 {
		announced = fmt.Sprintf("; welcome announces %s", human(msDuration(d.welcome.PingIntervalMS)))
	}
	if w.lost != "" {
		return d.heartbeatLost(ch, w, sentinelLost)
	}
	if len(w.pings) == 0 {
		return d.noPings(ch, watched, announced)
	}
	first := w.pings[0].Sub(w.connected)
	longest := first
	for i := 1; i < len(w.pings); i++ {
		longest = max(longest, w.pings[i].Sub(w.pings[i-1]))
	}
	longest = max(longest, w.end.Sub(w.pings[len(w.pings)-1]))
	ch.Measured["first_ping_ms"] = ms(first)
	ch.Measured["longest_silence_ms"] = ms(longest)
	if iv := w.interval(); iv > 0 {
		ch.Measured["ping_interval_ms"] = ms(iv)
		ch.Summary = fmt.Sprintf("ping frames every %s (%d pings, first after %s)%s", human(iv), len(w.pings), human(first), announced)
	} else {
		ch.Summary = fmt.Sprintf("one ping frame, after %s; no second one in the %s watched%s", human(first), human(watched), announced)
	}
	return d.rateSilence(ch, longest, len(w.pings) > 1, first)
}

// rateSilence judges the longest silence between pings against the idle
// timeout. With a single ping seen, a short silence proves nothing about
// the interval.
func (d *doctor) rateSilence(ch Check, longest time.Duration, measured bool, first time.Duration) Check {
	idle, safe := d.opts.IdleTimeout, d.opts.IdleTimeout*5/6
	switch {
	case longest > idle:
		ch.Status = Fail
		ch.Hint = fmt.Sprintf("proxies and load balancers commonly close sockets idle for %s, and this server lets %s pass without a ping: lower its ping interval to well below %s (Herald pings every 25 s by default)", human(idle), human(longest), human(safe))
	case longest > safe:
		ch.Status = Warn
		ch.Hint = fmt.Sprintf("%s without a ping is close to the %s idle timeout of common proxies; one delayed ping and they close the connection: lower the ping interval to about half the idle timeout", human(longest), human(idle))
	case !measured:
		ch.Status = Inconclusive
		ch.Summary += ": the interval is not measured"
		ch.Hint = fmt.Sprintf("run with --duration of at least %s to see a second ping", human(first+idle+5*time.Second))
		return ch
	}
	if ch.Status != Pass {
		ch.Summary += fmt.Sprintf(", longest silence %s", human(longest))
	} else {
		ch.Summary += fmt.Sprintf(", safe for %s proxy idle timeouts", human(idle))
	}
	return ch
}

// heartbeatLost judges a connection that answered every ping and ended
// anyway: not concluded when every connection ended with it; otherwise a
// failure, with an idle timeout named only when the connection was quiet
// before the drop and no ping was due yet.
func (d *doctor) heartbeatLost(ch Check, w heartbeatWatch, sentinelLost time.Time) Check {
	after := w.lostAt.Sub(w.connected)
	ch.Measured["lost_after_ms"] = ms(after)
	if together(w.lostAt, sentinelLost) {
		ch.Status = Inconclusive
		ch.Summary = fmt.Sprintf("%s after %s, when every connection to the server ended (see liveness)", w.lost, human(after))
		return ch
	}
	ch.Status = Fail
	ch.Summary = fmt.Sprintf("%s after %s although the doctor answered all %d pings", w.lost, human(after), len(w.pings))
	if len(w.pings) == 0 {
		ch.Summary = fmt.Sprintf("%s after %s, before the server sent any ping", w.lost, human(after))
	}
	iv := w.interval()
	quiet := !w.closed && w.silence >= 200*time.Millisecond && (iv == 0 || w.silence < iv)
	switch {
	case quiet:
		ch.Measured["silence_ms"] = ms(w.silence)
		ch.Summary += fmt.Sprintf(", after %s without traffic either way", human(w.silence))
		next := "before the server's next ping"
		if len(w.pings) == 0 {
			next = "and the server had sent no ping"
		}
		ch.Hint = fmt.Sprintf("the connection was dropped while quiet, %s: an idle timeout of about %s (a proxy's, a load balancer's or the server's own) ends quiet connections; the server's pings must come more often than that, or the timeout must be longer", next, human(w.silence))
	case w.closed:
		ch.Hint = "the server closed a connection that answered every ping; its close code and reason say why"
	default:
		ch.Hint = "the server (or something between) ended a connection that answered every ping, right after traffic: its logs should say why"
	}
	return ch
}

// noPings rates a connection that got no ping at all while watched: a
// failure only when the watch outlasted the idle timeout.
func (d *doctor) noPings(ch Check, watched time.Duration, announced string) Check {
	ch.Summary = fmt.Sprintf("no ping frame in the %s watched%s", human(watched), announced)
	if watched < d.opts.IdleTimeout {
		ch.Status = Inconclusive
		want := d.opts.IdleTimeout + 5*time.Second
		if d.welcome != nil && d.welcome.PingIntervalMS > 0 {
			want = 2*msDuration(d.welcome.PingIntervalMS) + 5*time.Second
		}
		ch.Hint = fmt.Sprintf("the run was too short to see a ping: run with --duration of at least %s", human(want))
		return ch
	}
	ch.Status = Fail
	ch.Hint = fmt.Sprintf("the server sends no WebSocket ping frames: proxies close sockets that are idle for %s or so, and without pings neither side notices a dead peer; send a ping frame every %s or less", human(d.opts.IdleTimeout), human(d.opts.IdleTimeout*5/12))
	return ch
}

func (d *doctor) judgePong(w heartbeatWatch, sentinelLost time.Time) Check {
	ch := Check{Name: "pong", Status: Pass}
	if w.err != nil {
		return d.noConn(ch.Name, w.err)
	}
	if ic, ok := d.interrupted(ch.Name); ok {
		return ic
	}
	switch {
	case w.pongOK:
		ch.Measured = map[string]any{"pong_ms": ms(w.pongRTT)}
		ch.Summary = fmt.Sprintf("answered the doctor's ping frame in %s", human(w.pongRTT))
		if w.pongRTT > slowPong {
			ch.Status = Warn
			ch.Hint = "the pong came late: a server that reads slowly (blocked reader, overloaded event loop) delays every client's liveness check"
		}
	case w.pongOther:
		ch.Status = Warn
		ch.Summary = "answered the doctor's ping frame with a pong carrying other data"
		ch.Hint = "RFC 6455 §5.5.3 wants the pong to echo the ping's application data; clients that match pongs to pings will not recognise it"
	case together(w.lostAt, sentinelLost):
		ch.Status = Inconclusive
		ch.Summary = "no pong for the doctor's ping frame: " + w.lost + ", when every connection to the server ended (see liveness)"
	default:
		ch.Status = Fail
		ch.Summary = fmt.Sprintf("no pong for the doctor's ping frame within %s", human(d.opts.Timeout))
		if w.lost != "" {
			ch.Summary = "no pong for the doctor's ping frame: " + w.lost
		}
		ch.Hint = "RFC 6455 requires a pong for every ping frame; clients that probe the connection with ping frames will take it for dead and reconnect"
	}
	return ch
}
