package doctor

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// position is a place in a channel's stream.
type position struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// reconnectRun is the state of the reconnection check.
type reconnectRun struct {
	d       *doctor
	c       *conn
	channel string
	pos     *position // nil when recovery cannot be checked
	nextID  uint64

	times              []time.Duration
	welcomes           int
	recovered, replays int
	recoveryTried      int
	problems           []step
}

// reconnect drops the connection Opts.Reconnect times, without a close
// frame, and reconnects at once. For Herald it subscribes to a channel of
// its own first; after each reconnect it publishes one message (which the
// dropped subscription missed) and subscribes with since, expecting
// recovered true and the missed message replayed.
func (d *doctor) reconnect() Check {
	ch := Check{Name: "reconnect", Status: Pass, Measured: map[string]any{}}
	c, err := d.dialReady()
	if err != nil {
		return d.noConn(ch.Name, err)
	}
	rr := &reconnectRun{d: d, c: c, channel: "herald-doctor." + randomHex(), nextID: 1}
	defer func() { rr.c.Close() }()
	if d.herald {
		rr.subscribe(nil)
	}
	for i := 0; i < d.opts.Reconnect; i++ {
		if time.Now().After(d.deadline) {
			rr.problems = append(rr.problems, step{Warn, fmt.Sprintf("stopped after %d of %d reconnects", i, d.opts.Reconnect),
				"the --duration budget ran out: give the run more time or fewer --reconnect rounds"})
			break
		}
		if !rr.round(i) {
			break
		}
	}
	rr.c.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "herald doctor"))
	if ic, ok := d.interrupted(ch.Name); ok {
		return ic
	}
	return rr.report(ch)
}

// round drops the connection, reconnects and, for Herald, checks recovery.
// It returns false when the endpoint could not be reached again.
func (rr *reconnectRun) round(i int) bool {
	d := rr.d
	d.journal.note(event{what: "the doctor dropped a connection without a close frame (reconnect check)"})
	rr.c.Close()
	start := time.Now()
	c, err := d.dial(false)
	if err != nil {
		rr.problems = append(rr.problems, reconnectFailed(i, err))
		return false
	}
	rr.c = c
	if !d.herald {
		rr.times = append(rr.times, time.Since(start))
		return true
	}
	if _, err := c.readWelcome(d.wait(d.opts.Timeout)); err != nil {
		rr.problems = append(rr.problems, step{Fail, fmt.Sprintf("reconnect %d: %v", i+1, err),
			"a Herald endpoint sends welcome on every connection; clients wait for it before resubscribing"})
		return true
	}
	rr.welcomes++
	rr.times = append(rr.times, time.Since(start))
	if rr.pos != nil {
		rr.recover(i)
	}
	return true
}

// reconnectFailed judges a reconnect that could not be made: a failure
// when the server refused it with an HTTP status, not concluded when the
// server could not be reached at all (the liveness check says why).
func reconnectFailed(i int, err error) step {
	var herr *handshakeError
	if errors.As(err, &herr) && herr.status != 0 {
		return step{Fail, fmt.Sprintf("reconnect %d refused: %v", i+1, err),
			"the endpoint refused a client that just dropped: it may rate-limit reconnects without a Retry-After, or keep the old session in the way"}
	}
	return step{Inconclusive, fmt.Sprintf("reconnect %d failed: %v", i+1, err), ""}
}

// subscribe subscribes to the doctor's channel, with since when given, and
// returns the reply; on a refusal it turns the recovery check off.
func (rr *reconnectRun) subscribe(since *position) *reply {
	id := rr.id()
	req := map[string]any{"type": "subscribe", "id": id, "channel": rr.channel}
	if since != nil {
		req["since"] = since
	}
	rr.c.sendJSON(req)
	r, closed, err := rr.c.awaitReply(rr.d.wait(rr.d.opts.Timeout), byID(id))
	if err != nil || closed != nil || r.Type != "subscribed" {
		rr.noRecovery("subscribe", describeReply(r, closed, err))
		return nil
	}
	if since == nil {
		rr.pos = &position{Epoch: r.Epoch, Offset: r.Offset}
	}
	return r
}

// recover publishes one message the dropped subscription missed, then
// subscribes with since and expects it back.
func (rr *reconnectRun) recover(i int) {
	d, c := rr.d, rr.c
	id := rr.id()
	c.sendJSON(map[string]any{"type": "publish", "id": id, "channel": rr.channel, "data": map[string]any{"herald_doctor": i + 1}})
	pub, closed, err := c.awaitReply(d.wait(d.opts.Timeout), byID(id))
	if err != nil || closed != nil || pub.Type != "published" {
		rr.noRecovery("publish", describeReply(pub, closed, err))
		return
	}
	rr.recoveryTried++
	sub := rr.subscribe(rr.pos)
	if sub == nil {
		return
	}
	if sub.Recovered == nil || !*sub.Recovered {
		hint := "the server could not replay what a reconnecting client missed although the stream kept its epoch: check the history size and time-to-live"
		if sub.Epoch != rr.pos.Epoch {
			hint = "the channel's epoch changed, so its history was lost: a restart with a memory broker, or nodes behind a load balancer that do not share one broker"
		}
		rr.problems = append(rr.problems, step{Fail, fmt.Sprintf("reconnect %d: subscribe with since %s/%d -> recovered false (epoch %s, offset %d)", i+1, rr.pos.Epoch, rr.pos.Offset, sub.Epoch, sub.Offset), hint})
		rr.pos = &position{Epoch: sub.Epoch, Offset: sub.Offset}
		return
	}
	rr.recovered++
	want := pub.Offset
	_, closed, err = c.awaitReply(d.wait(d.opts.Timeout), func(r *reply) bool {
		return r.Type == "message" && r.Channel == rr.channel && r.Offset == want
	})
	if err != nil || closed != nil {
		rr.problems = append(rr.problems, step{Fail, fmt.Sprintf("reconnect %d: recovered true but message %d not replayed (%s)", i+1, want, describeReply(nil, closed, err)),
			"recovered true promises every missed message, in order, before live traffic"})
	} else {
		rr.replays++
	}
	rr.pos = &position{Epoch: sub.Epoch, Offset: want}
}

// noRecovery records that recovery could not be checked, once.
func (rr *reconnectRun) noRecovery(what, got string) {
	rr.pos = nil
	rr.problems = append(rr.problems, step{Warn, fmt.Sprintf("recovery not checked: %s on %s -> %s", what, rr.channel, got),
		"the doctor needs to subscribe and publish on a channel of its own to test recovery; pass a --token that allows herald-doctor.* channels"})
}

func (rr *reconnectRun) id() uint64 {
	rr.nextID++
	return rr.nextID
}

func (rr *reconnectRun) report(ch Check) Check {
	n := len(rr.times)
	ch.Measured["reconnects"] = n
	var parts []string
	if n > 0 {
		var total, longest time.Duration
		for _, t := range rr.times {
			total += t
			longest = max(longest, t)
		}
		what := "upgrade"
		if rr.d.herald {
			what = "welcome"
			ch.Measured["welcomes"] = rr.welcomes
		}
		ch.Measured["reconnect_avg_ms"], ch.Measured["reconnect_max_ms"] = ms(total/time.Duration(n)), ms(longest)
		parts = append(parts, fmt.Sprintf("%d reconnects after a dropped connection, time to %s avg %s, max %s", n, what, human(total/time.Duration(n)), human(longest)))
	}
	if rr.d.herald {
		parts = append(parts, fmt.Sprintf("welcome %d/%d", rr.welcomes, rr.d.opts.Reconnect))
		if rr.recoveryTried > 0 {
			ch.Measured["recovered"], ch.Measured["replayed"] = rr.recovered, rr.replays
			parts = append(parts, fmt.Sprintf("subscribe with since after a publish: recovered true %d/%d, missed message replayed %d/%d",
				rr.recovered, rr.recoveryTried, rr.replays, rr.recoveryTried))
		}
	}
	ch = merge(ch, rr.problems...)
	if len(parts) > 0 {
		ch.Summary = strings.TrimSuffix(strings.Join(parts, ", ")+"; "+ch.Summary, "; ")
	}
	return ch
}

func randomHex() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
