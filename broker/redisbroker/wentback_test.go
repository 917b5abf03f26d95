package redisbroker_test

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker/redisbroker"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestStreamWentBack forces the loss an asynchronous replica allows: a
// replica stops replicating and is promoted while its primary
// acknowledges two more publications, then the old primary resyncs from
// it and is promoted back, the same Redis process as before (so the
// stream's run_id does not change), with the stream two offsets behind
// what its subscribers received. The next publication must not reuse
// those offsets in the same epoch, which the subscribers would drop as
// duplicates: it starts a new epoch, and a subscriber that resubscribes
// with the last position it got is told recovered:false. So it goes
// whether the next publish comes through the node that holds the channel
// (which passes the position it saw to Redis) or through a node that does
// not (the holding node then notices the offset it already received).
// With Options.Replicas the two publications are not acknowledged, and
// every acknowledged one survives.
func TestStreamWentBack(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replicas int
		other    bool // publish after the loss through a node that does not hold the channel
	}{
		{name: "HoldingNode"},
		{name: "OtherNode", other: true},
		{name: "WaitForReplica", replicas: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const channel = "chat:back"
			a, b := startRedis(t), startRedis(t)
			replicaOf(t, b, a)
			opts := redisbroker.Options{Addr: a.addr, Prefix: "back:", Timeout: 300 * time.Millisecond, Replicas: tc.replicas}
			n := startNodeWith(t, opts)
			sub := subscribeOn(t, n.URL(), channel)
			epoch := sub.reply.Epoch
			pub := heraldtest.DialWelcome(t, n.URL(), nil)
			var acked []uint64
			for i := uint64(1); i <= 5; i++ {
				if i == 4 {
					waitField(t, b, "back:stream:{"+channel+"}", "o", "3")
					b.Do("REPLICAOF", "NO", "ONE")
				}
				f, err := pub.Publish(i, channel, fmt.Sprintf(`{"n":%d}`, i), "")
				switch {
				case err != nil:
					t.Fatal(err)
				case f.Type == "published":
					acked = append(acked, f.Offset)
				case f.Code != "unavailable" || tc.replicas == 0:
					t.Fatalf("publish %d: %+v", i, f)
				}
			}
			sub.waitCount(t, 5)
			replicaOf(t, a, b)
			waitField(t, a, "back:stream:{"+channel+"}", "o", "3")
			a.Do("REPLICAOF", "NO", "ONE")
			replicaOf(t, b, a)
			for _, off := range acked {
				if off > 3 && tc.replicas > 0 {
					t.Fatalf("offset %d acknowledged with Replicas 1, lost by the failover", off)
				}
			}
			if tc.replicas == 0 && len(acked) != 5 {
				t.Fatalf("acknowledged %v, want 5 publications", acked)
			}

			if tc.other {
				pub = heraldtest.DialWelcome(t, startNodeWith(t, opts).URL(), nil)
			}
			// Publish until the subscriber is closed: by the first
			// publication through the holding node, by the second through
			// another (the first one reuses an offset, which the holding
			// node does not deliver but takes as the sign to start anew).
			for id := uint64(10); ; id++ {
				select {
				case <-sub.done:
				case <-time.After(100 * time.Millisecond):
					f, err := pub.Publish(id, channel, fmt.Sprintf(`{"n":%d}`, id), "")
					if err != nil || f.Type != "published" {
						t.Fatalf("publish after the loss: %+v, %v", f, err)
					}
					if !tc.other && f.Offset != 1 {
						t.Fatalf("publish after the loss: %+v, want offset 1 of a new epoch", f)
					}
					if id == 20 {
						t.Fatal("the subscriber is still open after 10 publications")
					}
					continue
				}
				break
			}
			if sub.err == nil || !strings.Contains(sub.err.Error(), "1012") {
				t.Fatalf("subscriber after the loss: %v, want close 1012", sub.err)
			}
			for i, f := range sub.got() {
				if f.Offset != uint64(i+1) {
					t.Fatalf("subscriber's message %d at offset %d", i, f.Offset)
				}
				checkData(t, f, f.Offset)
			}

			back := heraldtest.DialWelcome(t, n.URL(), nil)
			reply := back.Subscribe(t, 1, channel, &heraldtest.Frame{Epoch: epoch, Offset: 5})
			if reply.Recovered == nil || *reply.Recovered || reply.Epoch == epoch {
				t.Fatalf("resubscribe since %s/5: %+v, want recovered:false in a new epoch", epoch, reply)
			}
			f, err := pub.Publish(99, channel, `{"n":99}`, "")
			if err != nil || f.Type != "published" || f.Offset != reply.Offset+1 {
				t.Fatalf("publish: %+v, %v", f, err)
			}
			if m := back.Expect(t, "message"); m.Offset != f.Offset {
				t.Fatalf("message %+v, want offset %d", m, f.Offset)
			}
		})
	}
}

// replicaOf makes r a replica of primary and waits until it is in sync.
func replicaOf(t *testing.T, r, primary *redisServer) {
	t.Helper()
	host, port, _ := net.SplitHostPort(primary.addr)
	primary.Do("CONFIG", "SET", "repl-diskless-sync-delay", "0")
	r.Do("REPLICAOF", host, port)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(redisCLI(t, r, "INFO", "replication"), "master_link_status:up") {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not sync with %s within 10s", r.addr, primary.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitField waits until the hash key of r has field at value.
func waitField(t *testing.T, r *redisServer, key, field, value string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for got := ""; got != value; got = strings.TrimSpace(redisCLI(t, r, "HGET", key, field)) {
		if time.Now().After(deadline) {
			t.Fatalf("%s %s on %s is %q after 10s, want %q", key, field, r.addr, got, value)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// redisCLI runs redis-cli on r and returns its output.
func redisCLI(t *testing.T, r *redisServer, args ...string) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(r.addr)
	out, err := exec.Command("redis-cli", append([]string{"-p", port}, args...)...).Output()
	if err != nil {
		t.Fatalf("redis-cli %v: %v", args, err)
	}
	return string(out)
}
