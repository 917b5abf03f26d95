// Package redistest starts Redis Cluster deployments for tests: real
// redis-server processes on free ports of 127.0.0.1, stopped and removed at
// the test's end.
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequireEnv turns the skip of a missing redis-server into a failure: CI
// sets HERALD_REQUIRE_REDIS=1 so that the tests cannot silently skip.
const RequireEnv = "HERALD_REQUIRE_REDIS"

// Cluster is a Redis Cluster of primaries with one replica each, without
// persistence, whose nodes notice a dead peer within NodeTimeout. It keeps
// serving the slots of the shards that are up while another is down
// (cluster-require-full-coverage no), as docs/OPERATIONS.md advises.
type Cluster struct {
	t     testing.TB
	dir   string
	nodes []*node // primaries first, then replicas in the same order
}

// NodeTimeout is the cluster-node-timeout of the nodes: a primary that
// does not answer for it is failed over to its replica.
const NodeTimeout = time.Second

type node struct {
	addr string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the process exited
}

// StartCluster starts a cluster of primaries primaries and one replica for
// each, waits until every slot is served, and stops it at t's end. Without
// redis-server on PATH the test is skipped (or fails, see RequireEnv).
func StartCluster(t testing.TB, primaries int) *Cluster {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv(RequireEnv) == "1" {
				t.Fatalf("%s is not on PATH and %s=1: install redis-server", bin, RequireEnv)
			}
			t.Skipf("%s is not on PATH: install redis-server to run the Redis Cluster tests", bin)
		}
	}
	c := &Cluster{t: t, dir: t.TempDir()}
	t.Cleanup(c.stopAll)
	for range 2 * primaries {
		n := &node{addr: clusterAddr(t)}
		c.nodes = append(c.nodes, n)
		if err := c.start(n); err != nil {
			t.Fatal(err)
		}
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitHealthy()
	return c
}

// clusterAddr returns a 127.0.0.1 address whose port, and the cluster bus
// port 10000 above it, were free a moment ago.
func clusterAddr(t testing.TB) string {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if port+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		if err != nil {
			continue
		}
		bus.Close()
		return "127.0.0.1:" + strconv.Itoa(port)
	}
}

// start starts n's redis-server, with the cluster configuration of its
// own file, and waits until it answers.
func (c *Cluster) start(n *node) error {
	_, port, _ := net.SplitHostPort(n.addr)
	dir := c.dir + "/" + port
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1",
		"--cluster-enabled", "yes", "--cluster-config-file", dir+"/nodes.conf",
		"--cluster-node-timeout", strconv.Itoa(int(NodeTimeout/time.Millisecond)),
		"--cluster-require-full-coverage", "no", "--cluster-replica-validity-factor", "0",
		"--repl-diskless-sync-delay", "0",
		"--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning")
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if reply, err := do(n.addr, "PING"); err == nil && reply == "+PONG" {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server %s exited at start: %s", n.addr, out)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server %s: no PONG within 10s: %s", n.addr, out)
		}
	}
}

func (c *Cluster) stopAll() {
	for _, n := range c.nodes {
		n.kill()
	}
}

// kill sends SIGKILL to n's process, if running, and waits for its end.
func (n *node) kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd = nil
	n.mu.Unlock()
	if cmd != nil {
		cmd.Process.Kill()
		<-done
	}
}

// Addrs returns the addresses of every node, primaries first.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.addr
	}
	return addrs
}

// URL returns redis://ADDR,ADDR,... naming every node as a seed.
func (c *Cluster) URL() string {
	return "redis://" + strings.Join(c.Addrs(), ",")
}

// PrimaryOf returns the address of the node that serves slot now.
func (c *Cluster) PrimaryOf(slot int) string {
	c.t.Helper()
	for _, n := range c.nodes {
		lines := c.clusterNodes(n.addr)
		if lines == nil {
			continue // the first node that answers decides
		}
		for _, line := range lines {
			f := strings.Fields(line)
			if len(f) < 9 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
				continue
			}
			for _, r := range f[8:] {
				lo, hi, _ := strings.Cut(r, "-")
				if hi == "" {
					hi = lo
				}
				l, err1 := strconv.Atoi(lo)
				h, err2 := strconv.Atoi(hi)
				if err1 == nil && err2 == nil && l <= slot && slot <= h {
					return strings.Split(f[1], "@")[0]
				}
			}
		}
		return ""
	}
	return ""
}

// clusterNodes returns the lines of CLUSTER NODES on addr, nil when it
// does not answer.
func (c *Cluster) clusterNodes(addr string) []string {
	out, err := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", port(addr), "CLUSTER", "NODES").Output()
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// Kill kills the node at addr (SIGKILL: its replica takes over once the
// others noticed, after NodeTimeout).
func (c *Cluster) Kill(addr string) {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.addr == addr {
			n.kill()
			return
		}
	}
	c.t.Fatalf("no cluster node %s", addr)
}

// WaitHealthy waits until every running node reports cluster_state:ok
// and every running replica is in sync with its primary.
func (c *Cluster) WaitHealthy() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !c.healthy() {
		if time.Now().After(deadline) {
			c.t.Fatalf("cluster not healthy within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) healthy() bool {
	for _, n := range c.nodes {
		n.mu.Lock()
		running := n.cmd != nil
		n.mu.Unlock()
		if !running {
			continue
		}
		out, err := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", port(n.addr), "CLUSTER", "INFO").Output()
		if err != nil || !bytes.Contains(out, []byte("cluster_state:ok")) {
			return false
		}
		out, err = exec.Command("redis-cli", "-h", "127.0.0.1", "-p", port(n.addr), "INFO", "replication").Output()
		if err != nil || bytes.Contains(out, []byte("role:slave")) && !bytes.Contains(out, []byte("master_link_status:up")) {
			return false
		}
	}
	return true
}

// Do runs one command on the node at addr and returns the first line of
// its reply as RESP ("+OK", ":1", "-ERR ...").
func (c *Cluster) Do(addr string, args ...string) string {
	c.t.Helper()
	reply, err := do(addr, args...)
	if err != nil {
		c.t.Fatalf("redis %s %v: %v", addr, args, err)
	}
	return reply
}

func do(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write(b.Bytes()); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(line, "\r\n"), nil
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
