package bench

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// goMetrics are the Go runtime figures of a server's /metrics (herald
// serve registers the Go collector).
type goMetrics struct {
	goroutines, heapInuse, stackInuse float64
}

// scrapeGoMetrics reads the server's /metrics; it fails when the server
// does not serve them.
func scrapeGoMetrics(wsURL string) (goMetrics, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(httpURL(wsURL, "/metrics"))
	if err != nil {
		return goMetrics{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return goMetrics{}, fmt.Errorf("/metrics: %s", resp.Status)
	}
	var m goMetrics
	found := 0
	fields := map[string]*float64{
		"go_goroutines":                 &m.goroutines,
		"go_memstats_heap_inuse_bytes":  &m.heapInuse,
		"go_memstats_stack_inuse_bytes": &m.stackInuse,
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if p := fields[name]; ok && p != nil {
			if *p, err = strconv.ParseFloat(value, 64); err == nil {
				found++
			}
		}
	}
	if found != len(fields) {
		return goMetrics{}, fmt.Errorf("/metrics: no Go runtime metrics")
	}
	return m, sc.Err()
}
