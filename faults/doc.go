// Package faults holds Herald's fault-injection suite; it has no code of its
// own. Its tests start `herald serve` processes and put a fault between them
// and their subscribers (the Go client in the test, and a `herald sub`
// process): latency, a bandwidth limit, a half-open connection, resets, a
// proxy that cuts every connection every few seconds (through an in-process
// toxiproxy), and packet loss from nftables in a network namespace around
// the server. Under each fault a publisher on an unfaulted path sends at a
// steady rate, and the suite checks that every subscriber receives every
// message exactly once and in order once the fault clears, and that the
// server's goroutines, connections and heap return to their baseline.
//
// The suite runs when HERALD_FAULTS=1 (scripts/test sets it) and writes its
// report to report.txt in this directory:
//
//	HERALD_FAULTS=1 go test -race -count=1 ./faults
//
// HERALD_FAULT_SECONDS sets how long each scenario publishes (default 60;
// the faulted window is half of it).
package faults
