package faults_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Heartbeat settings of every scenario's server: short, so that a dead
// connection is noticed within seconds (interval + timeout = 4 s).
const (
	pingInterval = 2 * time.Second
	pongTimeout  = 2 * time.Second
	// historySize holds the longest outage of any scenario at the publish
	// rate; the channel is filled to it before the baseline so that the
	// history's memory does not grow during the measurement.
	historySize = 2000
)

// server is a `herald serve` process.
type server struct {
	addr    string // host:port it listens on
	cmd     *exec.Cmd
	log     *lockedBuffer // stderr
	exited  chan struct{}
	waitErr error
	http    *http.Client
}

// startServer runs herald serve on a free port of 127.0.0.1. With ns, it
// runs inside that network namespace and is reached through ns's dialer.
func startServer(t *testing.T, ns *netns) *server {
	t.Helper()
	args := []string{"serve", "--addr", "127.0.0.1:0", "--log-format", "json",
		"--ping-interval", pingInterval.String(), "--pong-timeout", pongTimeout.String(),
		"--history-size", strconv.Itoa(historySize), "--history-ttl", "30m",
		"--rate", "5000", "--burst", "5000", "--shutdown-timeout", "4s"}
	var cmd *exec.Cmd
	dial := (&net.Dialer{}).DialContext
	if ns != nil {
		cmd = ns.command(heraldBin, args...)
		dial = ns.dialer(cleanSource)
	} else {
		cmd = exec.Command(heraldBin, args...)
	}
	// A small GC target keeps the heap metrics close to the live heap, so
	// that before/after comparisons measure retained memory, not garbage.
	cmd.Env = append(cmd.Environ(), "GOGC=10")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, log: new(lockedBuffer), exited: make(chan struct{}),
		http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go s.readLog(stderr, addr)
	go func() { s.waitErr = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.kill() })
	select {
	case s.addr = <-addr:
	case <-s.exited:
		t.Fatalf("herald serve exited at start: %v\n%s", s.waitErr, s.log)
	case <-time.After(30 * time.Second):
		t.Fatalf("herald serve did not report its address\n%s", s.log)
	}
	return s
}

// readLog keeps the server's log and sends the address it serves on.
func (s *server) readLog(r io.Reader, addr chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		s.log.Write(append(line, '\n'))
		var rec struct {
			Msg string `json:"msg"`
			URL string `json:"url"`
		}
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "herald serving" {
			addr <- strings.TrimSuffix(strings.TrimPrefix(rec.URL, "http://"), "/")
		}
	}
}

func (s *server) wsURL() string { return "ws://" + s.addr + "/ws" }

// stop ends the server with SIGTERM, as an operator would, and fails the
// test when it does not exit cleanly or the race detector spoke.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		s.kill()
		t.Errorf("herald serve did not exit within 20 s of SIGTERM")
	}
	if s.waitErr != nil {
		t.Errorf("herald serve: %v", s.waitErr)
	}
	if strings.Contains(s.log.String(), "DATA RACE") {
		t.Errorf("the race detector reported a data race in herald serve:\n%s", s.log)
	}
}

func (s *server) kill() {
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// serverStats are the server's own measurements from /metrics.
type serverStats struct {
	goroutines  int
	connections int
	heap        int64 // bytes of live and not yet collected heap objects
	hbKills     int   // connections ended by the server's heartbeat
}

func (s *server) stats(ctx context.Context) (serverStats, error) {
	m, err := s.metrics(ctx)
	if err != nil {
		return serverStats{}, err
	}
	return serverStats{
		goroutines:  int(m["go_goroutines"]),
		connections: int(m["herald_connections"]),
		heap:        int64(m["go_memstats_heap_alloc_bytes"]),
		hbKills:     int(m["herald_heartbeat_terminations_total"]),
	}, nil
}

// metrics reads /metrics into a map from series (name with labels) to value.
// The scrape runs on a fresh connection, so that the server has no idle
// keep-alive goroutine of ours between two scrapes.
func (s *server) metrics(ctx context.Context) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+s.addr+"/metrics", nil)
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	m := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if line == "" || line[0] == '#' || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if _, ok := m["go_goroutines"]; !ok {
		return nil, errors.New("/metrics has no go_goroutines")
	}
	return m, nil
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// portOf returns the port of a host:port address.
func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}
