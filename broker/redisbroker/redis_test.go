package redisbroker_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker/redisbroker"
)

// redisServer is a redis-server process of one test, on a free port of
// 127.0.0.1, without persistence: a restart loses every key, as a Redis
// that crashed without a dump would. One started by startRedisRDB keeps
// its directory across restarts instead, and loads the snapshot an
// explicit SAVE wrote there.
type redisServer struct {
	t    testing.TB
	addr string
	dir  string // kept across restarts; empty: a new empty one each start

	mu  sync.Mutex
	cmd *exec.Cmd
	out *bytes.Buffer
}

// requireRedisEnv turns the skip of a missing redis-server into a failure.
const requireRedisEnv = "HERALD_REQUIRE_REDIS"

// startRedis starts a redis-server for t and stops it at t's end. Without
// redis-server on PATH the test is skipped, or fails when
// HERALD_REQUIRE_REDIS=1 (CI sets it so the tests cannot silently skip).
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	return startRedisIn(t, "")
}

// startRedisRDB starts a redis-server whose restarts load the RDB
// snapshot of its last SAVE (it saves on no other occasion: a SIGKILL
// loses every write since), as a Redis with RDB persistence does after a
// crash.
func startRedisRDB(t testing.TB) *redisServer {
	t.Helper()
	return startRedisIn(t, t.TempDir())
}

func startRedisIn(t testing.TB, dir string) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv(requireRedisEnv) == "1" {
			t.Fatalf("redis-server is not on PATH and %s=1: install it (apt-get install redis-server)", requireRedisEnv)
		}
		t.Skipf("redis-server is not on PATH: install it (apt-get install redis-server) to run the Redis broker tests")
	}
	r := &redisServer{t: t, dir: dir}
	for attempt := 0; ; attempt++ {
		r.addr = freeAddr(t)
		err := r.tryStart()
		if err == nil {
			break
		}
		if attempt == 4 {
			t.Fatalf("redis-server: %v", err)
		}
	}
	t.Cleanup(r.Stop)
	return r
}

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// tryStart starts redis-server on r.addr and waits until it answers PING.
func (r *redisServer) tryStart() error {
	_, port, _ := net.SplitHostPort(r.addr)
	dir := r.dir
	if dir == "" {
		dir = r.t.TempDir()
	}
	cmd := exec.Command("redis-server",
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--loglevel", "warning")
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !ping(r.addr) {
		select {
		case <-exited:
			return fmt.Errorf("exited at start: %s", out)
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("no PONG within 10s: %s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.mu.Lock()
	r.cmd, r.out = cmd, out
	r.mu.Unlock()
	go func() {
		<-exited
		r.mu.Lock()
		if r.cmd == cmd {
			r.cmd = nil
		}
		r.mu.Unlock()
	}()
	return nil
}

// ping reports whether a Redis at addr answers PING.
func ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}

// Stop kills the server (SIGKILL: no shutdown, no dump) and waits until
// its port refuses connections.
func (r *redisServer) Stop() {
	r.mu.Lock()
	cmd := r.cmd
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	for deadline := time.Now().Add(5 * time.Second); ping(r.addr) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}

// Restart starts the server again on the same address: empty, or from
// the snapshot of the last SAVE for one of startRedisRDB.
func (r *redisServer) Restart() {
	r.t.Helper()
	r.Stop()
	var err error
	for range 50 { // the port may take a moment to be free again
		if err = r.tryStart(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Fatalf("restart redis-server on %s: %v", r.addr, err)
}

// Do runs one command with a raw connection and returns the reply's
// first line, for tests that look at Redis behind the broker's back.
func (r *redisServer) Do(args ...string) string {
	r.t.Helper()
	c, err := net.DialTimeout("tcp", r.addr, time.Second)
	if err != nil {
		r.t.Fatalf("redis %v: %v", args, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		r.t.Fatalf("redis %v: %v", args, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		r.t.Fatalf("redis %v: %v", args, err)
	}
	return line[:len(line)-2]
}

var prefixes atomic.Int64

// newBroker returns a broker on r with a key prefix of its own, closed at
// the test's end.
func newBroker(t testing.TB, r *redisServer, opts redisbroker.Options) *redisbroker.Broker {
	t.Helper()
	opts.Addr = r.addr
	return openBroker(t, opts)
}

// openBroker returns a broker of opts, with a key prefix of its own unless
// opts has one, closed at the test's end.
func openBroker(t testing.TB, opts redisbroker.Options) *redisbroker.Broker {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = "test" + strconv.FormatInt(prefixes.Add(1), 10) + ":"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := redisbroker.New(ctx, opts)
	if err != nil {
		t.Fatalf("redisbroker.New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// Signal sends sig to the server (SIGSTOP and SIGCONT make it hang and
// resume).
func (r *redisServer) Signal(sig os.Signal) {
	r.t.Helper()
	r.mu.Lock()
	cmd := r.cmd
	r.mu.Unlock()
	if cmd == nil {
		r.t.Fatal("redis-server is not running")
	}
	if err := cmd.Process.Signal(sig); err != nil {
		r.t.Fatal(err)
	}
}
