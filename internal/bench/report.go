package bench

import (
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one line of a summary table.
type Row struct{ Name, Value string }

// WriteTable prints rows as a two-column table.
func WriteTable(w io.Writer, title string, rows []Row) error {
	fmt.Fprintf(w, "%s\n", title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintf(tw, "  %s\t%s\n", r.Name, r.Value)
	}
	return tw.Flush()
}

func formatMillis(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

// count formats n with thousands separators.
func count[T ~int | ~int64 | ~uint64](n T) string {
	s := strconv.FormatInt(int64(n), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func rate(n float64) string { return count(int64(n+0.5)) + "/s" }

func latencyRow(name string, l Latency) Row {
	return Row{name, fmt.Sprintf("p50 %s  p99 %s  p99.9 %s  max %s ms", formatMillis(time.Duration(l.P50)),
		formatMillis(time.Duration(l.P99)), formatMillis(time.Duration(l.P999)), formatMillis(time.Duration(l.Max)))}
}

func cpuRow(name string, c CPUUse) Row {
	return Row{name, fmt.Sprintf("%s ms (%.0f%% of a core)", formatMillis(time.Duration(c.CPU)), 100*c.CoreUsed)}
}

// loadCPURow is the load side's own CPU use, flagged when it used nearly
// all the cores it may run on: the figures then measure the load side too.
func loadCPURow(c CPUUse) Row {
	row := cpuRow("load CPU", c)
	if cores := runtime.GOMAXPROCS(0); c.CoreUsed >= 0.9*float64(cores) {
		row.Value += fmt.Sprintf("; near all of the %d core(s) it may use, so the load side may limit what was measured", cores)
	}
	return row
}

// kib formats bytes in KiB.
func kib(b float64) string { return strconv.FormatFloat(b/1024, 'f', 2, 64) + " KiB" }

// progress prints one status line per period to w until stop is closed.
func progress(w io.Writer, period time.Duration, stop <-chan struct{}, line func(elapsed time.Duration) string) {
	if w == nil {
		return
	}
	start := time.Now()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			fmt.Fprintf(w, "%6.1fs  %s\n", time.Since(start).Seconds(), line(time.Since(start)))
		}
	}
}
