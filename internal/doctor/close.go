package doctor

import (
	"fmt"
	"time"

	"github.com/gobwas/ws"
)

// close runs the close handshake from the client side with 1000 and
// checks that the server echoes it and then ends the TCP connection. lost
// is when the server dropped the connection without the echo (zero when it
// did not), so that a drop shared with every other connection can be told
// from the server's answer.
func (d *doctor) close() (ch Check, lost time.Time) {
	ch = Check{Name: "close", Measured: map[string]any{}}
	c, err := d.dialReady()
	if err != nil {
		return d.noConn(ch.Name, err), time.Time{}
	}
	defer c.Close()
	sent := time.Now()
	d.journal.note(event{what: "the doctor closed a connection with close 1000 (close check)"})
	c.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "herald doctor"))
	f, err := c.nextData(d.wait(d.opts.Timeout))
	for err == nil && f.op != ws.OpClose {
		f, err = c.nextData(d.wait(d.opts.Timeout))
	}
	if ic, ok := d.interrupted(ch.Name); ok {
		return ic, time.Time{}
	}
	if err != nil {
		ch.Status = Fail
		ch.Summary = "sent close 1000 -> " + describeEnd(err)
		ch.Hint = "RFC 6455 §5.5.1 wants a close frame in answer to the client's; without it clients wait out their close timeout and report 1006 (abnormal closure) instead of a normal close"
		if ended(err) {
			lost = c.lostAt()
		}
		return ch, lost
	}
	code, reason := f.closeCode()
	rtt := f.at.Sub(sent)
	ch.Measured["close_code"], ch.Measured["close_reason"], ch.Measured["close_ms"] = code, reason, ms(rtt)
	ch.Status = Pass
	ch.Summary = fmt.Sprintf("sent close 1000 -> close %d %q in %s", code, reason, human(rtt))
	if code != int(ws.StatusNormalClosure) {
		ch.Status = Warn
		ch.Hint = fmt.Sprintf("the server answered a normal close with %d; it should echo 1000, or clients may treat their own clean shutdown as an error and reconnect", code)
	}
	_, err = c.next(d.wait(d.opts.Timeout))
	switch {
	case ended(err):
		ch.Summary += ", then the server closed the TCP connection"
	case err == errTimeout:
		ch.Status = worse(ch.Status, Warn)
		ch.Summary += fmt.Sprintf(", but the TCP connection stayed open %s more", human(d.opts.Timeout))
		ch.Hint = "after the close handshake the server should close the TCP connection (RFC 6455 §7.1.1); otherwise each closed client holds a socket until it gives up"
	}
	return ch, time.Time{}
}
