package redisbroker_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/broker/brokertest"
	"github.com/heraldhq/herald/broker/redisbroker"
	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/redistest"
)

// TestClusterConformance runs the broker conformance suite on a Redis
// Cluster of three primaries, named by its seed nodes.
func TestClusterConformance(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	brokertest.Run(t, func(t *testing.T, opts broker.HistoryOptions) broker.Broker {
		return openBroker(t, redisbroker.Options{URL: c.URL(), History: opts})
	})
}

// channelsPerShard returns one channel name of prefix per primary of c,
// keyed by the primary's address.
func channelsPerShard(t *testing.T, c *redistest.Cluster, prefix string) map[string]string {
	t.Helper()
	seed := c.Addrs()[0]
	chans := make(map[string]string)
	for i := 0; len(chans) < 3; i++ {
		ch := prefix + strconv.Itoa(i)
		slot, err := strconv.Atoi(strings.TrimPrefix(c.Do(seed, "CLUSTER", "KEYSLOT", "{"+ch+"}"), ":"))
		if err != nil {
			t.Fatal(err)
		}
		if p := c.PrimaryOf(slot); chans[p] == "" {
			chans[p] = ch
		}
	}
	return chans
}

// TestClusterTwoNodes: two Herald nodes on a cluster, a channel on every
// shard: what a client publishes on node A reaches the subscribers of node
// B, each channel's publications only through its own shard. Node A waits
// for a replica of each publication (Options.Replicas); node B knows one
// seed node only.
func TestClusterTwoNodes(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	opts := redisbroker.Options{URL: c.URL(), Prefix: "two:", Timeout: 300 * time.Millisecond, Replicas: 1}
	a := startNodeWith(t, opts)
	opts.URL, opts.Replicas = "redis://"+c.Addrs()[0], 0
	b := startNodeWith(t, opts)
	chans := channelsPerShard(t, c, "room:")
	pub := heraldtest.DialWelcome(t, a.URL(), nil)
	id := uint64(0)
	for primary, ch := range chans {
		s := subscribeOn(t, b.URL(), ch)
		for i := uint64(1); i <= 5; i++ {
			id++
			if f, err := pub.Publish(id, ch, fmt.Sprintf(`{"n":%d}`, i), ""); err != nil || f.Type != "published" || f.Offset != i {
				t.Fatalf("publish %d on %s: %+v, %v", i, ch, f, err)
			}
		}
		s.waitCount(t, 5)
		for i, f := range s.got() {
			if f.Offset != uint64(i+1) {
				t.Fatalf("%s: message %d at offset %d", ch, i, f.Offset)
			}
			checkData(t, f, f.Offset)
		}
		// The stream lives on the channel's shard.
		if got := c.Do(primary, "HGET", "two:stream:{"+ch+"}", "o"); got != "$1" {
			t.Fatalf("%s: the stream hash is not on %s (HGET answered %q)", ch, primary, got)
		}
	}
}

// TestClusterFailover: a primary of the cluster is killed. Publishes on
// its channels are answered unavailable until its replica took over, then
// served again; the channels of the other shards keep being published and
// delivered, in order, throughout. The subscriber of the failed shard's
// channel, whose node subscribed it again on the new primary, is told the
// stream started anew (the new primary is another Redis process) and
// resubscribes: recovered:false in a new epoch, then the live messages.
func TestClusterFailover(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	opts := redisbroker.Options{URL: c.URL(), Prefix: "failover:", Timeout: 300 * time.Millisecond}
	a, b := startNodeWith(t, opts), startNodeWith(t, opts)
	chans := channelsPerShard(t, c, "room:")
	var victim string
	var others []string
	for primary, ch := range chans {
		if victim == "" {
			victim = primary
		} else {
			others = append(others, ch)
		}
	}
	lost := chans[victim]
	subs := make(map[string]*subscriber)
	for _, ch := range chans {
		subs[ch] = subscribeOn(t, b.URL(), ch)
	}
	epoch := subs[lost].reply.Epoch
	pub := heraldtest.DialWelcome(t, a.URL(), nil)
	id := uint64(0)
	publish := func(ch string, n uint64, key string) heraldtest.Frame {
		t.Helper()
		id++
		f, err := pub.Publish(id, ch, fmt.Sprintf(`{"n":%d}`, n), key)
		if err != nil {
			t.Fatalf("publish on %s: %v", ch, err)
		}
		return f
	}
	sent := make(map[string]uint64)
	publishOthers := func() {
		t.Helper()
		for _, ch := range others {
			sent[ch]++
			if f := publish(ch, sent[ch], ""); f.Type != "published" || f.Offset != sent[ch] {
				t.Fatalf("publish %d on %s, a healthy shard: %+v", sent[ch], ch, f)
			}
		}
	}
	for i := uint64(1); i <= 3; i++ {
		if f := publish(lost, i, ""); f.Type != "published" || f.Offset != i {
			t.Fatalf("publish %d on %s: %+v", i, lost, f)
		}
		publishOthers()
	}
	subs[lost].waitCount(t, 3)

	c.Kill(victim)
	refused := 0
	deadline := time.Now().Add(30 * time.Second)
	for {
		f := publish(lost, 4, "after-kill")
		if f.Type == "published" {
			break
		}
		if f.Code != "unavailable" {
			t.Fatalf("publish on %s while its primary is down: %+v, want unavailable", lost, f)
		}
		refused++
		if time.Now().After(deadline) {
			t.Fatalf("publish on %s still refused 30s after its primary died", lost)
		}
		publishOthers()
		time.Sleep(50 * time.Millisecond)
	}
	if refused == 0 {
		t.Fatalf("the first publish on %s after its primary died was served", lost)
	}
	t.Logf("%d publishes on %s refused during the failover", refused, lost)
	publishOthers()
	for _, ch := range others {
		subs[ch].waitCount(t, int(sent[ch]))
		for i, f := range subs[ch].got() {
			if f.Offset != uint64(i+1) {
				t.Fatalf("%s, on a healthy shard: message %d at offset %d", ch, i, f.Offset)
			}
		}
	}

	// Node B subscribes the channel again on the new primary (what was
	// published before that is not delivered) and receives its
	// publications, in their new epoch: its subscriber is closed to
	// resubscribe.
	s := subs[lost]
	for n := uint64(5); ; n++ {
		select {
		case <-s.done:
		case <-time.After(100 * time.Millisecond):
			if f := publish(lost, n, ""); f.Type != "published" {
				t.Fatalf("publish on %s after the failover: %+v", lost, f)
			}
			if time.Now().After(deadline) {
				t.Fatalf("node B delivered nothing of %s 30s after its primary died", lost)
			}
			continue
		}
		break
	}
	if s.err == nil || !strings.Contains(s.err.Error(), "1012") {
		t.Fatalf("subscriber of %s after the failover: %v, want close 1012", lost, s.err)
	}
	back := heraldtest.DialWelcome(t, b.URL(), nil)
	reply := back.Subscribe(t, 1, lost, &heraldtest.Frame{Epoch: epoch, Offset: 3})
	if reply.Recovered == nil || *reply.Recovered || reply.Epoch == epoch {
		t.Fatalf("resubscribe to %s since %s/3 after the failover: %+v, want recovered:false in a new epoch", lost, epoch, reply)
	}
	f := publish(lost, 100, "")
	if f.Type != "published" || f.Offset != reply.Offset+1 {
		t.Fatalf("publish on %s after the failover: %+v", lost, f)
	}
	if m := back.Expect(t, "message"); m.Offset != f.Offset {
		t.Fatalf("message after the failover: %+v, want offset %d", m, f.Offset)
	}
}

// TestSeedURL: a URL naming a seed node that is not host:port is refused
// before any connection.
func TestSeedURL(t *testing.T) {
	_, err := redisbroker.New(t.Context(), redisbroker.Options{URL: "redis://127.0.0.1:1,nohost/0"})
	if err == nil || !strings.Contains(err.Error(), `seed node "nohost"`) {
		t.Fatalf("New with a bad seed node: %v", err)
	}
}
