package doctor

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// deadWatch is what a connection that went silent saw.
type deadWatch struct {
	err       error // the connection could not be made
	connected time.Time
	pings     []time.Time // the server's pings, none answered
	lostAt    time.Time   // when the server dropped it; zero when it kept it
	how       string      // how it dropped it
	closeCode int
	end       time.Time // when watching stopped
}

// watchDeadPeer connects, then goes silent: it answers no ping and sends
// nothing, like a client whose network vanished, until the server drops
// the connection or the budget ends.
func (d *doctor) watchDeadPeer() deadWatch {
	c, err := d.dial(false)
	if err != nil {
		return deadWatch{err: err}
	}
	defer c.Close()
	w := deadWatch{connected: c.upgraded}
	for {
		f, err := c.next(d.deadline)
		w.end = time.Now()
		switch {
		case err == errTimeout:
			c.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "herald doctor"))
			return w
		case ended(err):
			w.lostAt, w.how = c.lostAt(), "without a close frame"
			if errors.Is(err, syscall.ECONNRESET) {
				w.how = "by a TCP reset, without a close frame"
			}
			return w
		case err != nil:
			return w // interrupted
		case f.op == ws.OpPing:
			w.pings = append(w.pings, f.at)
		case f.op == ws.OpClose:
			code, reason := f.closeCode()
			w.lostAt, w.how, w.closeCode = f.at, fmt.Sprintf("with close %d %q", code, reason), code
			return w
		}
	}
}

// judgeDeadPeer passes only a drop the server's heartbeat explains: after
// at least one unanswered ping, within the time the heartbeat the doctor
// observed allows, while a connection that answered its pings was kept. A
// drop shared with every connection, or with the connection that answered
// its pings, is not concluded.
func (d *doctor) judgeDeadPeer(w deadWatch, hb heartbeatWatch, sentinelLost time.Time) Check {
	ch := Check{Name: "dead-peer", Measured: map[string]any{"unanswered_pings": len(w.pings)}}
	if w.err != nil {
		return d.noConn(ch.Name, w.err)
	}
	if ic, ok := d.interrupted(ch.Name); ok {
		return ic
	}
	if w.lostAt.IsZero() {
		return d.deadPeerKept(ch, w, hb)
	}
	after := w.lostAt.Sub(w.connected)
	ch.Measured["dropped_after_ms"] = ms(after)
	if w.closeCode != 0 {
		ch.Measured["close_code"] = w.closeCode
	}
	ch.Summary = fmt.Sprintf("dropped %s after the doctor went silent, %s", human(after), w.how)
	if len(w.pings) > 0 {
		ch.Summary += fmt.Sprintf(" (unanswered pings: %d, the first %s after connecting)", len(w.pings), human(w.pings[0].Sub(w.connected)))
	}
	ch.Summary += d.announcedDeadline()
	iv := d.observedInterval(w, hb)
	switch {
	case together(w.lostAt, sentinelLost):
		ch.Status = Inconclusive
		ch.Summary += ", when every connection to the server ended (see liveness)"
	case hb.lost != "" && !together(hb.lostAt, sentinelLost):
		ch.Status = Inconclusive
		ch.Summary += fmt.Sprintf(", but the connection that answered every ping was dropped too (%s after connecting): the drop says nothing about dead peers", human(hb.lostAt.Sub(hb.connected)))
	case len(w.pings) == 0:
		ch.Status = Inconclusive
		ch.Summary += ", before the server sent any ping: no heartbeat can have noticed the silence yet"
	case iv == 0:
		ch.Status = Inconclusive
		ch.Summary += ", but the doctor saw too few pings to know the heartbeat"
		ch.Hint = "run with a longer --duration so the heartbeat check sees two pings"
	default:
		return d.rateDrop(ch, w, iv)
	}
	return ch
}

// rateDrop passes a drop after an unanswered ping that came within the
// time the heartbeat allows, and warns about a later one.
func (d *doctor) rateDrop(ch Check, w deadWatch, iv time.Duration) Check {
	took := w.lostAt.Sub(w.pings[0])
	allowed := d.dropAllowance(iv)
	ch.Measured["after_first_ping_ms"] = ms(took)
	ch.Measured["ping_interval_ms"] = ms(iv)
	ch.Summary += fmt.Sprintf("; %s after the first unanswered ping, with pings every %s", human(took), human(iv))
	if took <= allowed {
		ch.Status = Pass
		return ch
	}
	ch.Status = Warn
	ch.Hint = fmt.Sprintf("the server noticed the silent peer only %s after its first unanswered ping; a heartbeat of %s should notice within %s, and a vanished client holds memory and subscriptions until then", human(took), human(iv), human(allowed))
	return ch
}

// dropAllowance is how long after its first unanswered ping a server with
// ping interval iv may take to drop the peer: two intervals (ping, then
// terminate at the next tick, as the ws README does), or the announced
// pong timeout after a ping when longer, plus slack.
func (d *doctor) dropAllowance(iv time.Duration) time.Duration {
	allowed := 2 * iv
	if w := d.welcome; w != nil && w.PongTimeoutMS > 0 {
		allowed = max(allowed, iv+msDuration(w.PongTimeoutMS))
	}
	return allowed + max(iv/2, 250*time.Millisecond)
}

// observedInterval returns the ping interval the doctor saw: on the
// connection that answered pings, else on the silent one, else the one
// Herald's welcome announced; zero when none.
func (d *doctor) observedInterval(w deadWatch, hb heartbeatWatch) time.Duration {
	if iv := hb.interval(); iv > 0 {
		return iv
	}
	if len(w.pings) > 1 {
		return w.pings[len(w.pings)-1].Sub(w.pings[0]) / time.Duration(len(w.pings)-1)
	}
	if d.welcome != nil && d.welcome.PingIntervalMS > 0 {
		return msDuration(d.welcome.PingIntervalMS)
	}
	return 0
}

func (d *doctor) announcedDeadline() string {
	w := d.welcome
	if w == nil || w.PingIntervalMS <= 0 {
		return ""
	}
	return fmt.Sprintf("; welcome announces ping %s + pong timeout %s = %s",
		human(msDuration(w.PingIntervalMS)), human(msDuration(w.PongTimeoutMS)), human(msDuration(w.PingIntervalMS+w.PongTimeoutMS)))
}

// deadPeerKept reports a silent connection the server kept until the end:
// a failure only when the server had the time to notice (three unanswered
// pings, twice its interval after the first, the announced deadline, or
// the idle timeout without a ping), not concluded otherwise.
func (d *doctor) deadPeerKept(ch Check, w deadWatch, hb heartbeatWatch) Check {
	held := w.end.Sub(w.connected)
	ch.Measured["held_ms"] = ms(held)
	ch.Summary = fmt.Sprintf("still open %s after the doctor went silent (unanswered pings: %d)", human(held), len(w.pings))
	iv := d.observedInterval(w, hb)
	var enough bool
	switch {
	case d.welcome != nil && d.welcome.PingIntervalMS > 0:
		ch.Summary += d.announcedDeadline()
		enough = held > msDuration(d.welcome.PingIntervalMS+d.welcome.PongTimeoutMS)+max(iv/2, 250*time.Millisecond)
	case len(w.pings) >= 3:
		enough = true
	case len(w.pings) > 0 && iv > 0:
		enough = w.end.Sub(w.pings[0]) > d.dropAllowance(iv)
	case len(w.pings) == 0:
		enough = held >= d.opts.IdleTimeout
	}
	if !enough {
		ch.Status = Inconclusive
		want := d.opts.IdleTimeout + 5*time.Second
		if iv > 0 {
			want = 3*iv + 5*time.Second
		}
		if w := d.welcome; w != nil && w.PingIntervalMS > 0 {
			want = msDuration(w.PingIntervalMS+w.PongTimeoutMS) + 5*time.Second
		}
		ch.Hint = fmt.Sprintf("the run was too short to see the server drop a dead peer: run with --duration of at least %s", human(want))
		return ch
	}
	ch.Status = Fail
	ch.Hint = "the server keeps connections whose client has vanished (sleeping laptop, lost network): they hold memory and subscriptions and inflate presence; close a connection that sent nothing, pong included, for ping interval + pong timeout"
	if len(w.pings) == 0 {
		ch.Hint = "the server sent no ping, so it cannot tell a vanished client from an idle one; " + ch.Hint
	}
	return ch
}

// noConn is the result of a check whose connection could not be made: not
// concluded, with a cause named only when the server gave one (an HTTP
// status).
func (d *doctor) noConn(name string, err error) Check {
	if ic, ok := d.interrupted(name); ok {
		return ic
	}
	ch := Check{Name: name, Status: Inconclusive, Summary: "not concluded: could not connect: " + err.Error()}
	var herr *handshakeError
	if errors.As(err, &herr) && herr.status != 0 {
		ch.Hint = fmt.Sprintf("the endpoint accepted the first connection but refused this one with HTTP %d: the doctor needs up to five connections at once; if the server limits connections per client, raise the limit for the run", herr.status)
	}
	return ch
}
