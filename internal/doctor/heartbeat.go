package doctor

import (
	"bytes"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// slowPong is the pong round trip above which the pong check warns.
const slowPong = time.Second

// pingPayload is the application data of the doctor's ping frame.
var pingPayload = []byte("herald doctor")

// heartbeatWatch is what one connection that answers every ping saw.
type heartbeatWatch struct {
	connected time.Time
	pings     []time.Time
	end       time.Time // when watching stopped
	lost      string    // how the connection ended early, if it did
	pongRTT   time.Duration
	pongOK    bool // a pong with the ping's payload arrived
	pongOther bool // a pong with another payload arrived
}

// heartbeat watches one connection that answers every ping, until three
// pings (two intervals) arrived or the budget ends. Right after connecting
// it sends a ping frame of its own and times the pong.
func (d *doctor) heartbeat() (heartbeat, pong Check) {
	c, err := d.dial(false)
	if err != nil {
		return d.noConn("heartbeat", err), d.noConn("pong", err)
	}
	defer c.Close()
	w := heartbeatWatch{connected: c.upgraded}
	sent := time.Now()
	c.write(ws.OpPing, pingPayload)
	pongDue := sent.Add(d.opts.Timeout)
	pongSettled := false
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
				w.lost = describeEnd(err)
			}
			break
		}
		switch f.op {
		case ws.OpPing:
			w.pings = append(w.pings, f.at)
			c.write(ws.OpPong, f.payload)
		case ws.OpPong:
			if bytes.Equal(f.payload, pingPayload) && !w.pongOK {
				w.pongOK, w.pongRTT, pongSettled = true, f.at.Sub(sent), true
			} else {
				w.pongOther = true
			}
		case ws.OpClose:
			code, reason := f.closeCode()
			w.lost = fmt.Sprintf("closed with %d %q", code, reason)
		}
		if w.lost != "" {
			break
		}
	}
	w.end = time.Now()
	if ic, ok := d.interrupted("heartbeat"); ok {
		return ic, skipped("pong", "interrupted")
	}
	return d.judgeHeartbeat(w), d.judgePong(w)
}

// judgeHeartbeat rates the longest silence seen between server pings (from
// the upgrade to the first ping, between pings, and from the last ping to
// the end of watching) against the proxy idle timeout.
func (d *doctor) judgeHeartbeat(w heartbeatWatch) Check {
	ch := Check{Name: "heartbeat", Status: Pass, Measured: map[string]any{"pings": len(w.pings)}}
	idle, safe := d.opts.IdleTimeout, d.opts.IdleTimeout*5/6
	watched := w.end.Sub(w.connected)
	announced := ""
	if d.welcome != nil && d.welcome.PingIntervalMS > 0 {
		announced = fmt.Sprintf("; welcome announces %s", human(msDuration(d.welcome.PingIntervalMS)))
	}
	if w.lost != "" {
		ch.Status = Fail
		ch.Summary = fmt.Sprintf("%s after %s although the doctor answered all %d pings", w.lost, human(watched), len(w.pings))
		ch.Hint = "the server (or a proxy in front of it) ended a healthy connection: look for an idle timeout shorter than the ping interval, or a server that needs more than pongs as proof of life"
		return ch
	}
	if len(w.pings) == 0 {
		return d.noPings(ch, watched, announced)
	}
	first := w.pings[0].Sub(w.connected)
	longest := first
	var gaps []time.Duration
	for i := 1; i < len(w.pings); i++ {
		gap := w.pings[i].Sub(w.pings[i-1])
		gaps = append(gaps, gap)
		longest = max(longest, gap)
	}
	tail := w.end.Sub(w.pings[len(w.pings)-1])
	longest = max(longest, tail)
	ch.Measured["first_ping_ms"] = ms(first)
	ch.Measured["longest_silence_ms"] = ms(longest)
	if len(gaps) > 0 {
		interval := (w.pings[len(w.pings)-1].Sub(w.pings[0])) / time.Duration(len(gaps))
		ch.Measured["ping_interval_ms"] = ms(interval)
		ch.Summary = fmt.Sprintf("ping frames every %s (%d pings, first after %s)%s", human(interval), len(w.pings), human(first), announced)
	} else {
		ch.Summary = fmt.Sprintf("one ping frame, after %s; no second one in the %s watched%s", human(first), human(watched), announced)
	}
	switch {
	case longest > idle:
		ch.Status = Fail
		ch.Hint = fmt.Sprintf("proxies and load balancers commonly close sockets idle for %s, and this server lets %s pass without a ping: lower its ping interval to well below %s (Herald pings every 25 s by default)", human(idle), human(longest), human(safe))
	case longest > safe:
		ch.Status = Warn
		ch.Hint = fmt.Sprintf("%s without a ping is close to the %s idle timeout of common proxies; one delayed ping and they close the connection: lower the ping interval to about half the idle timeout", human(longest), human(idle))
	}
	if ch.Status != Pass {
		ch.Summary += fmt.Sprintf(", longest silence %s", human(longest))
	} else {
		ch.Summary += fmt.Sprintf(", safe for %s proxy idle timeouts", human(idle))
	}
	return ch
}

// noPings rates a connection that got no ping at all while watched.
func (d *doctor) noPings(ch Check, watched time.Duration, announced string) Check {
	ch.Summary = fmt.Sprintf("no ping frame in the %s watched%s", human(watched), announced)
	if d.welcome != nil && msDuration(d.welcome.PingIntervalMS) > watched && watched < d.opts.IdleTimeout {
		ch.Status = Warn
		ch.Hint = fmt.Sprintf("the run was too short to see a ping: run with --duration of at least %s", human(2*msDuration(d.welcome.PingIntervalMS)+5*time.Second))
		return ch
	}
	ch.Status = Fail
	ch.Hint = fmt.Sprintf("the server sends no WebSocket ping frames: proxies close sockets that are idle for %s or so, and without pings neither side notices a dead peer; send a ping frame every %s or less", human(d.opts.IdleTimeout), human(d.opts.IdleTimeout*5/12))
	if watched < d.opts.IdleTimeout {
		ch.Hint += fmt.Sprintf(" (if it pings less often than every %s, run with a longer --duration to measure)", human(watched))
	}
	return ch
}

func (d *doctor) judgePong(w heartbeatWatch) Check {
	ch := Check{Name: "pong", Status: Pass}
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

// deadPeer connects, then goes silent: it answers no ping and sends
// nothing, like a client whose network vanished. The server should drop
// the connection within its ping interval plus pong timeout.
func (d *doctor) deadPeer() Check {
	ch := Check{Name: "dead-peer", Measured: map[string]any{}}
	c, err := d.dial(false)
	if err != nil {
		return d.noConn(ch.Name, err)
	}
	defer c.Close()
	var pings []time.Time
	how := ""
	for how == "" {
		f, err := c.next(d.deadline)
		if ic, ok := d.interrupted(ch.Name); ok {
			return ic
		}
		switch {
		case err == errTimeout:
			return d.deadPeerKept(ch, c, pings)
		case err != nil:
			how = "without a close frame"
			if errors.Is(err, syscall.ECONNRESET) {
				how = "by a TCP reset, without a close frame"
			}
		case f.op == ws.OpPing:
			pings = append(pings, f.at)
		case f.op == ws.OpClose:
			code, reason := f.closeCode()
			how = fmt.Sprintf("with close %d %q", code, reason)
			ch.Measured["close_code"] = code
		}
	}
	after := time.Since(c.upgraded)
	ch.Status = Pass
	ch.Measured["dropped_after_ms"] = ms(after)
	ch.Measured["unanswered_pings"] = len(pings)
	ch.Summary = fmt.Sprintf("dropped %s after the doctor went silent, %s", human(after), how)
	if len(pings) > 0 {
		ch.Summary += fmt.Sprintf(" (unanswered pings: %d, the first %s after connecting)", len(pings), human(pings[0].Sub(c.upgraded)))
	}
	if w := d.welcome; w != nil && w.PingIntervalMS > 0 {
		ch.Summary += fmt.Sprintf("; welcome announces ping %s + pong timeout %s = %s",
			human(msDuration(w.PingIntervalMS)), human(msDuration(w.PongTimeoutMS)), human(msDuration(w.PingIntervalMS+w.PongTimeoutMS)))
	}
	return ch
}

// deadPeerKept reports a silent connection the server kept until the end.
func (d *doctor) deadPeerKept(ch Check, c *conn, pings []time.Time) Check {
	held := time.Since(c.upgraded)
	c.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "herald doctor"))
	ch.Status = Fail
	ch.Measured["held_ms"] = ms(held)
	ch.Measured["unanswered_pings"] = len(pings)
	ch.Summary = fmt.Sprintf("still open %s after the doctor went silent (unanswered pings: %d)", human(held), len(pings))
	if w := d.welcome; w != nil && msDuration(w.PingIntervalMS+w.PongTimeoutMS) >= held {
		ch.Status = Warn
		ch.Summary += fmt.Sprintf("; welcome announces ping %s + pong timeout %s", human(msDuration(w.PingIntervalMS)), human(msDuration(w.PongTimeoutMS)))
		ch.Hint = fmt.Sprintf("the run was too short to see the server drop a dead peer: run with --duration of at least %s", human(msDuration(w.PingIntervalMS+w.PongTimeoutMS)+5*time.Second))
		return ch
	}
	ch.Hint = "the server keeps connections whose client has vanished (sleeping laptop, lost network): they hold memory and subscriptions and inflate presence; close a connection that sent nothing, pong included, for ping interval + pong timeout"
	if len(pings) == 0 {
		ch.Hint = "the server sent no ping, so it cannot tell a vanished client from an idle one; " + ch.Hint
	}
	return ch
}

// noConn is the result of a check whose connection could not be made.
func (d *doctor) noConn(name string, err error) Check {
	if ic, ok := d.interrupted(name); ok {
		return ic
	}
	return Check{Name: name, Status: Fail, Summary: "could not connect: " + err.Error(),
		Hint: "the endpoint accepted the first connection but not this one: it may limit connections per client"}
}
