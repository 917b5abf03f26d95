package faults_test

import (
	"cmp"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// outcome is what one subscriber saw under one fault.
type outcome struct {
	fault, what, subscriber string
	skipped                 string // why the scenario did not run

	detectedBy      string
	detect, recover time.Duration // < 0: never

	published, received   int
	lost, duplicated      int
	outOfOrder, misplaced int // misplaced: offset differs from the publisher's
	unexpected            int // messages that were not the publisher's
	unrecovered           int // recoveries the server refused
	reconnects            int
	baseLag, maxLag       time.Duration // before the fault, and overall

	server serverOutcome
}

// analyse compares what the subscriber received with what was published:
// messages 1..total, each exactly once, in order, at the publisher's offsets.
func analyse(r *recorder, pub *publisher, total int, faultAt, clearAt time.Time) outcome {
	got, events, unrecovered := r.snapshot()
	o := outcome{subscriber: r.name, published: total, received: len(got), unrecovered: unrecovered, detect: -1, recover: -1}
	seen := make(map[int]int)
	prev := 0
	for _, d := range got {
		if d.n < 1 || d.n > total {
			o.unexpected++
			continue
		}
		seen[d.n]++
		if d.n < prev {
			o.outOfOrder++
		}
		prev = max(prev, d.n)
		if d.offset != pub.offset(d.n) {
			o.misplaced++
		}
		lag := d.at.Sub(d.sent)
		o.maxLag = max(o.maxLag, lag)
		if d.sent.Before(faultAt) {
			o.baseLag = max(o.baseLag, lag)
		}
		if o.detect < 0 && !d.at.Before(faultAt) && lag > lagThreshold {
			o.detect, o.detectedBy = d.at.Sub(faultAt), fmt.Sprintf("delivery lag %v", lag.Round(time.Millisecond))
		}
		if o.recover < 0 && !d.sent.Before(clearAt) {
			o.recover = d.at.Sub(clearAt)
		}
	}
	for n := 1; n <= total; n++ {
		switch c := seen[n]; {
		case c == 0:
			o.lost++
		case c > 1:
			o.duplicated += c - 1
		}
	}
	connected := 0
	for _, ev := range events {
		if ev.what == "connected" {
			connected++
			continue
		}
		if strings.HasPrefix(ev.what, "disconnected") && !ev.at.Before(faultAt) {
			if d := ev.at.Sub(faultAt); o.detect < 0 || d < o.detect {
				o.detect, o.detectedBy = d, shorten(ev.what)
			}
		}
	}
	o.reconnects = max(connected-1, 0)
	return o
}

// shorten keeps the cause of a disconnect event.
func shorten(s string) string {
	s = strings.TrimPrefix(s, "disconnected: ")
	if i := strings.Index(s, "; reconnecting in"); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimPrefix(s, "herald: ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return "disconnect: " + s
}

// check fails the test for what the report would show as a failure.
func (o outcome) check(t *testing.T) {
	t.Helper()
	if o.lost > 0 || o.duplicated > 0 || o.outOfOrder > 0 || o.misplaced > 0 || o.unexpected > 0 {
		t.Errorf("%s: lost %d, duplicated %d, out of order %d, at a wrong offset %d, unexpected %d of %d messages",
			o.subscriber, o.lost, o.duplicated, o.outOfOrder, o.misplaced, o.unexpected, o.published)
	}
	if o.unrecovered > 0 {
		t.Errorf("%s: %d recoveries failed (recovered=false)", o.subscriber, o.unrecovered)
	}
	if o.detect < 0 {
		t.Errorf("%s: the fault had no visible effect: no disconnect and no delivery slower than %v", o.subscriber, lagThreshold)
	}
	if o.recover < 0 {
		t.Errorf("%s: no message published after the fault cleared arrived", o.subscriber)
	}
}

var (
	resultsMu sync.Mutex
	results   []outcome
)

func record(o outcome) {
	resultsMu.Lock()
	results = append(results, o)
	resultsMu.Unlock()
}

// writeReport prints the report and writes it to path.
func writeReport(path string, elapsed time.Duration) error {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 {
		return nil
	}
	rank := func(o outcome) int {
		return slices.IndexFunc(faultList, func(f fault) bool { return f.name == o.fault })
	}
	slices.SortStableFunc(results, func(a, b outcome) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a.subscriber, b.subscriber))
	})
	var b strings.Builder
	fmt.Fprintf(&b, "Herald fault-injection report, %s (%s, race detector %v)\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.Version(), heraldtest.Race)
	fmt.Fprintf(&b, "Each scenario: a publisher sends %d messages/s for %v on an unfaulted path; the fault starts after %v and lasts %v;\n",
		int(time.Second/publishPeriod), scenarioLength, (scenarioLength / 12).Round(time.Second/10), scenarioLength/2)
	fmt.Fprintf(&b, "server ping interval %v, pong timeout %v; subscribers use the client's default options.\n", pingInterval, pongTimeout)
	fmt.Fprintf(&b, "detect: fault start to the subscriber's first disconnect or delivery slower than %v; recover: fault end to the first\n", lagThreshold)
	fmt.Fprintf(&b, "message published after it, in order with all before it. Suite time %v.\n\n", elapsed.Round(time.Second))

	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "fault\tsubscriber\tdetect\trecover\tpublished\treceived\tlost\tdup\torder\treconnects\tbase lag\tmax lag\tdetected by")
	for _, o := range results {
		if o.skipped != "" {
			fmt.Fprintf(w, "%s\t-\tSKIPPED: %s\n", o.fault, o.skipped)
			continue
		}
		order := "ok"
		if o.outOfOrder+o.misplaced+o.unexpected > 0 {
			order = fmt.Sprintf("BAD(%d/%d/%d)", o.outOfOrder, o.misplaced, o.unexpected)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t%v\t%v\t%s\n", o.fault, o.subscriber, dur(o.detect), dur(o.recover),
			o.published, o.received, o.lost, o.duplicated, order, o.reconnects, o.baseLag.Round(time.Millisecond), o.maxLag.Round(time.Millisecond), o.detectedBy)
	}
	w.Flush()
	b.WriteString(verdict(results))

	b.WriteString("\nServer (herald serve, GOGC=10) before the fault and after the subscribers caught up:\n")
	w = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "fault\tconnections\tgoroutines\theap\theartbeat kills\tsettled in\twhat the fault does")
	done := map[string]bool{}
	for _, o := range results {
		if done[o.fault] {
			continue
		}
		done[o.fault] = true
		if o.skipped != "" {
			fmt.Fprintf(w, "%s\t-\t-\t-\t-\t-\t%s\n", o.fault, o.what)
			continue
		}
		s := o.server
		fmt.Fprintf(w, "%s\t%d -> %d\t%d -> %d\t%s -> %s\t%d\t%s\t%s\n", o.fault, s.before.connections, s.after.connections,
			s.before.goroutines, s.after.goroutines, mib(s.before.heap), mib(s.after.heap), s.after.hbKills-s.before.hbKills, dur(s.settled), o.what)
	}
	w.Flush()
	fmt.Print("\n" + b.String())
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// verdict sums up the lost and duplicated messages of every scenario.
func verdict(rs []outcome) string {
	ran, lost, dup, bad := 0, 0, 0, 0
	for _, o := range rs {
		if o.skipped != "" {
			continue
		}
		ran++
		lost, dup = lost+o.lost, dup+o.duplicated
		if o.lost+o.duplicated+o.outOfOrder+o.misplaced+o.unexpected+o.unrecovered > 0 || o.detect < 0 || o.recover < 0 {
			bad++
		}
	}
	if bad > 0 {
		return fmt.Sprintf("FAILED: %d of %d subscriber runs; %d messages lost, %d duplicated in all\n", bad, ran, lost, dup)
	}
	return fmt.Sprintf("All %d subscriber runs: every message exactly once and in order (lost 0, duplicated 0)\n", ran)
}

func dur(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }
