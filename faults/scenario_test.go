package faults_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The shape of every scenario. The faulted window is half of the scenario's
// length (scenarioLength), after a warm-up of a twelfth of it.
const (
	publishPeriod = 50 * time.Millisecond // 20 messages/s
	// lagThreshold is the delivery delay, publish to handler, above which a
	// subscriber counts as affected by the fault. Unfaulted deliveries take
	// a few milliseconds (the report's "base lag"); a lost packet costs
	// TCP's minimum retransmission timeout, 200 ms.
	lagThreshold = 150 * time.Millisecond
	// catchUpTimeout bounds the wait, after the last publish, for every
	// subscriber to have it.
	catchUpTimeout = 90 * time.Second
	// settleTimeout bounds the wait for the server to return to its
	// baseline after the subscribers caught up.
	settleTimeout = 30 * time.Second
	// heapSlack is how far above its baseline the server's heap may end:
	// the GC's own variation at GOGC=10, far less than what a leaked
	// connection's buffers and send queue would hold.
	heapSlack = 1 << 20
)

// fault is one kind of network trouble between the subscribers and the
// server.
type fault struct {
	name string
	what string // for the report
	// netns runs the server in a network namespace instead of behind a
	// toxiproxy proxy.
	netns bool
	// start injects the fault and returns what clears it.
	start func(e *env) (clear func() error, err error)
}

// env is what a fault acts on.
type env struct {
	srv   *server
	proxy *faultProxy // nil with netns
	ns    *netns      // nil without netns
}

// serverOutcome is what the server did during one scenario.
type serverOutcome struct {
	before, after serverStats
	settled       time.Duration // after the subscribers caught up
}

// runScenario runs one fault: a publisher at 20/s on an unfaulted path, two
// subscribers (the Go client and herald sub) through the fault, the fault
// injected after the warm-up and cleared after half the scenario; then it
// checks exactly-once in-order delivery and the server's return to its
// baseline, and records the outcome for the report.
func runScenario(t *testing.T, f fault) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioLength+catchUpTimeout+settleTimeout+2*time.Minute)
	defer cancel()
	e := &env{}
	if f.netns {
		ns, err := newNetns(t)
		if err != nil {
			record(outcome{fault: f.name, what: f.what, skipped: err.Error()})
			t.Skipf("no network namespace with nftables here: %v", err)
		}
		e.ns = ns
	}
	e.srv = startServer(t, e.ns)
	t.Cleanup(func() { e.srv.stop(t) }) // after the subscribers and the proxy are closed
	channel := "faults:" + strings.ReplaceAll(f.name, " ", "-")

	subURL, pubDial, subDial := "", dialFunc(nil), dialFunc(nil)
	if e.ns != nil {
		subURL, pubDial, subDial = e.srv.wsURL(), e.ns.dialer(cleanSource), e.ns.dialer("")
	} else {
		e.proxy = startProxy(t, f.name, e.srv.addr)
		subURL = e.proxy.wsURL()
	}
	pub := newPublisher(ctx, t, e.srv.wsURL(), channel, pubDial)
	if err := pub.fill(ctx, historySize); err != nil {
		t.Fatalf("filling the history: %v", err)
	}
	subs := []*recorder{
		goSubscriber(ctx, t, subURL, channel, subDial),
		heraldSub(ctx, t, subURL, channel, e.ns),
	}

	begin := time.Now()
	warm, faultLen := scenarioLength/12, scenarioLength/2
	published := make(chan int, 1)
	pubErr := make(chan error, 1)
	go func() {
		n, err := pub.run(ctx, publishPeriod, begin.Add(scenarioLength))
		published <- n
		pubErr <- err
	}()

	time.Sleep(warm)
	var so serverOutcome
	base, err := baseline(ctx, e.srv, subs)
	if err != nil {
		t.Fatal(err)
	}
	so.before = base
	faultAt := time.Now()
	clear, err := f.start(e)
	if err != nil {
		t.Fatalf("injecting %s: %v", f.name, err)
	}
	time.Sleep(time.Until(faultAt.Add(faultLen)))
	clearAt := time.Now() // recovery counts the time to remove the fault too
	if err := clear(); err != nil {
		t.Fatalf("clearing %s: %v", f.name, err)
	}
	t.Logf("%s: fault from %v to %v after the start", f.name, faultAt.Sub(begin).Round(time.Millisecond), clearAt.Sub(begin).Round(time.Millisecond))

	total := <-published
	if err := <-pubErr; err != nil {
		t.Fatalf("publisher (unfaulted path): %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, catchUpTimeout)
	for _, s := range subs {
		if !s.waitFor(wctx, total) {
			t.Errorf("%s: message %d (the last) did not arrive within %v of the last publish", s.name, total, catchUpTimeout)
		}
	}
	wcancel()
	caughtUp := time.Now()
	so.after, err = settle(ctx, e.srv, base)
	so.settled = time.Since(caughtUp)
	if err != nil {
		t.Errorf("server did not return to its baseline within %v: %v (before: %+v, after: %+v)", settleTimeout, err, base, so.after)
	}

	for _, s := range subs {
		o := analyse(s, pub, total, faultAt, clearAt)
		o.fault, o.what, o.server = f.name, f.what, so
		record(o)
		o.check(t)
	}
}

// baseline reads the server's steady state once every subscriber has
// received messages: the median of three scrapes.
func baseline(ctx context.Context, srv *server, subs []*recorder) (serverStats, error) {
	for _, s := range subs {
		if s.last() == 0 {
			return serverStats{}, fmt.Errorf("%s received nothing in the warm-up", s.name)
		}
	}
	var samples []serverStats
	for range 3 {
		st, err := srv.stats(ctx)
		if err != nil {
			return st, err
		}
		samples = append(samples, st)
		time.Sleep(200 * time.Millisecond)
	}
	return median(samples), nil
}

func median(s []serverStats) serverStats {
	pick := func(get func(serverStats) int64) int64 {
		v := make([]int64, len(s))
		for i := range s {
			v[i] = get(s[i])
		}
		for i := range v {
			for j := i + 1; j < len(v); j++ {
				if v[j] < v[i] {
					v[i], v[j] = v[j], v[i]
				}
			}
		}
		return v[len(v)/2]
	}
	return serverStats{
		goroutines:  int(pick(func(x serverStats) int64 { return int64(x.goroutines) })),
		connections: int(pick(func(x serverStats) int64 { return int64(x.connections) })),
		heap:        pick(func(x serverStats) int64 { return x.heap }),
		hbKills:     s[0].hbKills,
	}
}

// settle waits until the server holds the baseline's connections, no more
// goroutines than then, and a heap within heapSlack of it.
func settle(ctx context.Context, srv *server, base serverStats) (serverStats, error) {
	deadline := time.Now().Add(settleTimeout)
	for {
		st, err := srv.stats(ctx)
		if err == nil {
			switch {
			case st.connections != base.connections:
				err = fmt.Errorf("%d connections, baseline %d", st.connections, base.connections)
			case st.goroutines > base.goroutines:
				err = fmt.Errorf("%d goroutines, baseline %d", st.goroutines, base.goroutines)
			case st.heap > base.heap+heapSlack:
				err = fmt.Errorf("heap %d bytes, baseline %d", st.heap, base.heap)
			default:
				return st, nil
			}
		}
		if time.Now().After(deadline) {
			return st, err
		}
		time.Sleep(250 * time.Millisecond)
	}
}
