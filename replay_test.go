package herald_test

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// publishSized publishes n messages whose data is a JSON string of size
// bytes on channel, from all conns at once, and returns when each was
// acknowledged or a publisher stopped at its first failure. It reports
// failures with t.Errorf, so it may run in any goroutine.
func publishSized(t *testing.T, conns []*heraldtest.Conn, channel string, n, size int) {
	data := `"` + strings.Repeat("x", size-2) + `"`
	var wg sync.WaitGroup
	for p, c := range conns {
		wg.Go(func() {
			for i := range n / len(conns) {
				f, err := c.Publish(uint64(i+1), channel, data, "")
				if err != nil || f.Type != "published" {
					t.Errorf("publisher %d, message %d: got %s %v, want published", p, i+1, f, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// missedEpoch subscribes a connection to channel, leaves, and returns the
// epoch it was told, for a later subscribe with since.
func missedEpoch(t *testing.T, url, channel string) string {
	t.Helper()
	a := heraldtest.DialWelcome(t, url, nil)
	epoch := a.Subscribe(t, 1, channel, nil).Epoch
	a.Close()
	return epoch
}

// shrinkReceiveBuffer makes c's socket take little of what the server
// writes while the test does not read, so that the server's writer, not the
// kernel, holds the rest.
func shrinkReceiveBuffer(t *testing.T, c *heraldtest.Conn) {
	t.Helper()
	if err := c.NetConn().(*net.TCPConn).SetReadBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
}

// A backlog larger than the send queue is replayed in pieces: all of it, in
// order, once, then the live messages published meanwhile and after.
func TestRecoveryOfABacklogLargerThanTheSendQueue(t *testing.T) {
	srv := startServer(t, fastOpts(herald.Options{})) // 1 MiB send queue
	epoch := missedEpoch(t, srv.url, "big")
	pubs := dialPublishers(t, srv.url, 4)
	publishSized(t, pubs, "big", 1000, 1500) // 1.5 MB missed

	b := heraldtest.DialWelcome(t, srv.url, nil)
	if sub := subscribeSince(t, b, "big", epoch, 0); sub["recovered"] != true || sub["offset"] != 1000.0 {
		t.Fatalf("subscribed = %v", sub)
	}
	// Live messages while the client has not read the replay yet.
	publishSized(t, pubs, "big", 200, 1500)
	expectOffsets(t, b, "big", 1, 1200)
	publishSized(t, pubs[:1], "big", 3, 1500)
	expectOffsets(t, b, "big", 1201, 1203)
	b.Send(t, `{"type":"ping","id":1}`)
	b.Expect(t, "pong") // nothing after 1203, no 4008
}

// Live messages that outgrow what a connection may hold during a long replay
// are read again from history, not lost and not a reason to close.
func TestRecoveryOutpacedByLiveMessages(t *testing.T) {
	mem := broker.NewMemory(&broker.MemoryOptions{History: broker.HistoryOptions{Size: 2000}})
	defer mem.Close()
	srv := startServer(t, fastOpts(herald.Options{Broker: mem, SendQueueBytes: 64 << 10}))
	epoch := missedEpoch(t, srv.url, "busy")
	pubs := dialPublishers(t, srv.url, 4)
	publishSized(t, pubs, "busy", 800, 8000) // 6.4 MB, more than the kernel buffers

	b := heraldtest.DialWelcome(t, srv.url, nil)
	shrinkReceiveBuffer(t, b)
	if sub := subscribeSince(t, b, "busy", epoch, 0); sub["recovered"] != true {
		t.Fatalf("subscribed = %v", sub)
	}
	// 320 KB of live messages while the replay waits for the client: more
	// than the 64 KiB the server holds for it.
	publishSized(t, pubs, "busy", 40, 8000)
	expectOffsets(t, b, "busy", 1, 840)
	publishSized(t, pubs[:1], "busy", 1, 8000)
	expectOffsets(t, b, "busy", 841, 841)
	b.Send(t, `{"type":"ping","id":1}`)
	b.Expect(t, "pong")
}

// The send queue still bounds a connection that is replaying: a client that
// reads nothing while its other channels fill the queue is closed with 4008.
func TestSlowConsumerDuringReplay(t *testing.T) {
	mem := broker.NewMemory(&broker.MemoryOptions{History: broker.HistoryOptions{Size: 2000}})
	defer mem.Close()
	srv := startServer(t, fastOpts(herald.Options{Broker: mem, SendQueueBytes: 64 << 10}))
	epoch := missedEpoch(t, srv.url, "backlog")
	pubs := dialPublishers(t, srv.url, 4)
	publishSized(t, pubs, "backlog", 800, 8000)

	b := heraldtest.DialWelcome(t, srv.url, nil)
	b.Subscribe(t, 1, "other", nil)
	shrinkReceiveBuffer(t, b)
	if sub := subscribeSince(t, b, "backlog", epoch, 0); sub["recovered"] != true {
		t.Fatalf("subscribed = %v", sub)
	}
	expectOffsets(t, b, "backlog", 1, 1) // the replay has started
	publishSized(t, pubs, "other", 40, 8000)
	if code := b.ExpectClose(t, heraldtest.Timeout); code != 4008 {
		t.Fatalf("close %d, want 4008", code)
	}
}

// A backlog holding a message larger than the send queue could never be
// replayed: the subscribe says so up front, and live messages follow.
func TestRecoveryTooLargeForTheSendQueue(t *testing.T) {
	srv := startServer(t, fastOpts(herald.Options{SendQueueBytes: 16 << 10}))
	epoch := missedEpoch(t, srv.url, "huge")
	pubs := dialPublishers(t, srv.url, 1)
	publishSized(t, pubs, "huge", 3, 100)
	publishSized(t, pubs, "huge", 1, 20000) // offset 4
	publishSized(t, pubs, "huge", 2, 100)

	b := heraldtest.DialWelcome(t, srv.url, nil)
	sub := subscribeSince(t, b, "huge", epoch, 0)
	if sub["recovered"] != false || sub["offset"] != 6.0 || sub["epoch"] != epoch {
		t.Fatalf("subscribed = %v, want recovered:false at offset 6", sub)
	}
	publishSized(t, pubs, "huge", 1, 100)
	expectOffsets(t, b, "huge", 7, 7)

	// After the large message, the backlog fits.
	c := heraldtest.DialWelcome(t, srv.url, nil)
	if sub := subscribeSince(t, c, "huge", epoch, 4); sub["recovered"] != true {
		t.Fatalf("subscribed since 4 = %v, want recovered:true", sub)
	}
	expectOffsets(t, c, "huge", 5, 7)
}
