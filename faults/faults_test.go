package faults_test

import (
	"testing"
	"time"
)

// faultList is every fault the suite injects, in report order.
var faultList = []fault{
	{
		name: "latency",
		what: "toxiproxy latency 400 ms +-100 ms, each way",
		start: func(e *env) (func() error, error) {
			return e.proxy.toxicBothWays("latency", `{"latency":400,"jitter":100}`)
		},
	},
	{
		name: "bandwidth",
		what: "toxiproxy bandwidth 1 KB/s towards the subscribers (they need ~2)",
		start: func(e *env) (func() error, error) {
			if err := e.proxy.addToxic("bandwidth", "bandwidth", "downstream", `{"rate":1}`); err != nil {
				return nil, err
			}
			return func() error { return e.proxy.removeToxic("bandwidth") }, nil
		},
	},
	{
		name: "half-open",
		what: "nothing forwarded either way, no FIN or RST: sockets stay open",
		start: func(e *env) (func() error, error) {
			return e.proxy.toxicBothWays("blackhole", `{}`)
		},
	},
	{
		name: "reset",
		what: "toxiproxy reset_peer each way: open connections cut, new ones reset",
		start: func(e *env) (func() error, error) {
			return e.proxy.toxicBothWays("reset_peer", `{"timeout":0}`)
		},
	},
	{
		name: "cut every 3s",
		what: "the proxy closes every connection every 3 s",
		start: func(e *env) (func() error, error) {
			return e.proxy.cutEvery(3 * time.Second)
		},
	},
	{
		name:  "packet loss",
		what:  "nftables drops 40% of packets each way (server in a network namespace)",
		netns: true,
		start: func(e *env) (func() error, error) {
			if err := e.ns.setLoss(portOf(e.srv.addr), 40); err != nil {
				return nil, err
			}
			return e.ns.clearLoss, nil
		},
	},
}

// TestFaults runs every fault scenario at once, each against its own
// server, and fails when a subscriber lost, repeated or reordered a message,
// or the server did not return to its baseline.
func TestFaults(t *testing.T) {
	if !enabled() {
		t.Skip("the fault-injection suite runs with HERALD_FAULTS=1 (scripts/test sets it)")
	}
	for _, f := range faultList {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			runScenario(t, f)
		})
	}
}
