package redisbroker_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/broker/redisbroker"
)

// startSentinel starts a Redis Sentinel that monitors primary as
// "herald", and stops it at t's end.
func startSentinel(t *testing.T, primary *redisServer) string {
	t.Helper()
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	host, pport, _ := net.SplitHostPort(primary.addr)
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	err := os.WriteFile(conf, []byte("port "+port+"\nbind 127.0.0.1\n"+
		"sentinel monitor herald "+host+" "+pport+" 1\n"+
		"sentinel down-after-milliseconds herald 1000\n"+
		"sentinel failover-timeout herald 5000\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); !ping(addr); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("redis sentinel did not start within 10s")
		}
	}
	return addr
}

// TestSentinel: a broker named by a Sentinel URL publishes to the primary
// the Sentinel names, and after a failover to the replica, to the new
// primary; its subscription follows.
func TestSentinel(t *testing.T) {
	a, b := startRedis(t), startRedis(t)
	replicaOf(t, b, a)
	s := startSentinel(t, a)
	br := openBroker(t, redisbroker.Options{URL: "redis://" + s + "?master_set=herald", Prefix: "sentinel:", Timeout: 300 * time.Millisecond})
	got := make(chan broker.Publication, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go br.Run(ctx, func(p broker.Publication) { got <- p })
	const channel = "chat:sentinel"
	if err := br.Subscribe(ctx, channel); err != nil {
		t.Fatal(err)
	}
	if _, err := br.Publish(ctx, channel, []byte(`1`), broker.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := <-got; p.Offset != 1 {
		t.Fatalf("delivered %+v", p)
	}

	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, _ := exec.Command("redis-cli", "-p", strings.Split(s, ":")[1], "SENTINEL", "FAILOVER", "herald").CombinedOutput()
		if strings.HasPrefix(string(out), "OK") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SENTINEL FAILOVER: %s", out)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(redisCLI(t, b, "INFO", "replication"), "role:master") {
		if time.Now().After(deadline) {
			t.Fatal("the replica was not promoted within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	published := make(map[broker.StreamPosition]bool)
	for {
		pos, err := br.Publish(ctx, channel, []byte(`2`), broker.PublishOptions{})
		if err == nil {
			published[pos] = true
		}
		select {
		case p := <-got:
			if !published[broker.StreamPosition{Epoch: p.Epoch, Offset: p.Offset}] {
				t.Fatalf("delivered %+v, not published after the failover", p)
			}
			// A publish the old primary took in the moment after the
			// promotion is lost with it, as Redis replicates
			// asynchronously: go on until the new primary holds the stream.
			if strings.TrimSpace(redisCLI(t, b, "EXISTS", "sentinel:stream:{"+channel+"}")) == "1" {
				return
			}
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing delivered from the new primary 20s after the failover (last publish: %v)", err)
		}
	}
}
