package herald_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// hostileDuration is how long the hostile clients attack; HERALD_HOSTILE_DURATION
// overrides it (for longer soak runs).
func hostileDuration() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("HERALD_HOSTILE_DURATION")); err == nil {
		return d
	}
	return 30 * time.Second
}

// attack runs one hostile client until ctx ends, reconnecting whenever the
// server throws it out.
func attack(ctx context.Context, kind int, hostport, url string) {
	for ctx.Err() == nil {
		if kind == 5 { // a handshake that never finishes
			conn, err := net.Dial("tcp", hostport)
			if err != nil {
				continue
			}
			fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n", hostport)
			select {
			case <-ctx.Done():
			case <-time.After(3 * time.Second):
			}
			conn.Close()
			continue
		}
		d := ws.Dialer{Protocols: []string{"herald.v1"}, Timeout: 2 * time.Second}
		conn, _, _, err := d.Dial(ctx, url)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go func() { <-ctx.Done(); conn.Close() }()
		misbehave(ctx, kind, conn)
		conn.Close()
	}
}

func misbehave(ctx context.Context, kind int, conn net.Conn) {
	write := func(op ws.OpCode, fin bool, p []byte) error {
		conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		return ws.WriteFrame(conn, ws.MaskFrame(ws.NewFrame(op, fin, p)))
	}
	garbage := make([]byte, 200)
	bigData := strings.Repeat("x", 60_000)
	for i := 0; ctx.Err() == nil; i++ {
		var err error
		switch kind {
		case 0: // garbage JSON and binary
			for j := range garbage {
				garbage[j] = byte(rand.IntN(256))
			}
			err = write(ws.OpText, true, []byte(`{"type":"publish","channel":"x","data":`+strings.Repeat("[", i%50)))
			if err == nil {
				err = write(ws.OpBinary, true, garbage)
			}
		case 1: // oversize frames, announced and sent
			err = write(ws.OpText, true, make([]byte, 70_000))
		case 2: // ping floods, never reading the pongs
			err = write(ws.OpPing, true, []byte("flood"))
		case 3: // subscribe floods
			err = write(ws.OpText, true, fmt.Appendf(nil, `{"type":"subscribe","id":%d,"channel":"flood%d"}`, i+1, i))
		case 6: // large publishes to ever new channels, to fill history
			err = write(ws.OpText, true, fmt.Appendf(nil, `{"type":"publish","channel":"fill-%d-%d","data":"%s"}`, rand.Uint64(), i, bigData))
			if err == nil && i%16 == 15 {
				err = drain(conn) // read the rate_limited replies now and then
			}
		case 4: // a frame that is never finished
			h := ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Length: 1000}
			ws.WriteHeader(conn, h)
			conn.Write([]byte(`{"type":`))
			<-ctx.Done()
			return
		}
		if err != nil {
			return
		}
	}
}

// syncLog collects a server's log lines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the lines that mention s.
func (l *syncLog) lines(s string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for line := range strings.Lines(l.b.String()) {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// drain reads what the server sent, without waiting for more.
func drain(conn net.Conn) error {
	conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	_, err := io.Copy(io.Discard, conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return nil
	}
	return err
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// The memory bounds of TestHostileClientsDoNotHurtOthers: the history bound
// of its memory broker, and what each open connection may hold besides: its
// send queue (hostileQueueBytes); the message being read, its decoded copy
// and the broker's copy of a publish waiting for room in history; buffers
// and stacks (docs/BENCHMARKS.md has the figures measured).
const (
	hostileHistoryBytes = 32 << 20
	hostileQueueBytes   = 256 << 10
	hostileConnOverhead = hostileQueueBytes + 3*herald.DefaultMaxMessageBytes + 16<<10
)

func TestHostileClientsDoNotHurtOthers(t *testing.T) {
	mem := broker.NewMemory(&broker.MemoryOptions{MaxHistoryBytes: hostileHistoryBytes})
	defer mem.Close()
	var serverLog syncLog
	// Pings every 2 s keep the heartbeat busy through the attack; the pong
	// timeout leaves a loaded machine (the race detector, a GC a second for
	// the memory samples, other tests) time to read the calm pair's pongs.
	srv := herald.New(&herald.Options{Broker: mem, PingInterval: 2 * time.Second, PongTimeout: 5 * time.Second, SendQueueBytes: hostileQueueBytes,
		Logger: slog.New(slog.NewTextHandler(&serverLog, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	mux := http.NewServeMux()
	mux.Handle("GET /ws", srv)
	hs := httptest.NewUnstartedServer(mux)
	hs.Config.ReadHeaderTimeout = 2 * time.Second // as herald serve sets it
	hs.Start()
	defer func() { hs.Close(); srv.Close() }()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
	ts := &testServer{Server: srv, http: hs, url: url}

	baseHeap := heapInUse()
	baseGoroutines := runtime.NumGoroutine()

	sub := heraldtest.MustDial(t, ts.url, nil)
	subSession, _ := sub.Expect(t, "welcome").Fields()["session"].(string)
	sub.Send(t, `{"type":"subscribe","id":1,"channel":"calm"}`)
	sub.Expect(t, "subscribed")
	pub := heraldtest.DialWelcome(t, ts.url, nil)

	// The attackers run in a process of their own, as they would in life,
	// so they compete with the server for the machine, not for this
	// process's scheduler.
	ctx, cancel := context.WithTimeout(context.Background(), hostileDuration())
	defer cancel()
	attacker := exec.Command(os.Args[0])
	attacker.Env = append(os.Environ(), "HERALD_HOSTILE_TARGET="+url)
	var attackerOut strings.Builder
	attacker.Stdout, attacker.Stderr = &attackerOut, &attackerOut
	if err := attacker.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("attacker output:\n%s", attackerOut.String())
		}
	}()
	waitFor(t, "the attack to start", func() bool { return srv.Connections() > 100 })

	// The well-behaved pair keeps talking through the attack; the
	// subscriber reads all the time, as a real client does, and must see
	// every message, in order.
	received := make(chan map[string]any, 10000)
	var subErr error // why the subscriber's reading ended, once received is closed
	go func() {
		defer close(received)
		for {
			f, err := sub.Next(time.Minute) // answers the server's pings
			if err != nil {
				subErr = err
				return
			}
			received <- f.Fields()
		}
	}()
	// Memory is sampled through the attack: the history the attackers fill
	// stays within its bound, and the heap within that plus what the
	// connections themselves hold.
	var peakHeap, peakHistory uint64
	var peakConns int
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for ctx.Err() == nil {
			peakHeap = max(peakHeap, heapInUse())
			peakHistory = max(peakHistory, uint64(mem.Stats().HistoryBytes))
			peakConns = max(peakConns, srv.Connections())
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	sent := 0
	for ctx.Err() == nil {
		sent++
		pub.Send(t, fmt.Sprintf(`{"type":"publish","id":%d,"channel":"calm","data":%d}`, sent, sent))
		pub.Expect(t, "published")
		time.Sleep(20 * time.Millisecond)
	}
	for i := 1; i <= sent; i++ {
		select {
		case m, ok := <-received:
			if !ok {
				t.Fatalf("subscriber connection lost after %d of %d messages: %v; the server said: %s", i-1, sent, subErr, serverLog.lines(subSession))
			}
			if m["type"] != "message" || m["offset"] != float64(i) || m["data"] != float64(i) {
				t.Fatalf("message %d: got %v", i, m)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d of %d did not arrive", i, sent)
		}
	}
	if err := attacker.Wait(); err != nil {
		t.Fatalf("attacker process: %v", err)
	}
	<-sampled
	t.Logf("peak during the attack: history %d KiB (bound %d KiB), heap %d KiB over the baseline, %d connections",
		peakHistory>>10, hostileHistoryBytes>>10, (peakHeap-min(peakHeap, baseHeap))>>10, peakConns)
	if peakHistory > hostileHistoryBytes {
		t.Errorf("history held %d bytes, over its bound of %d", peakHistory, hostileHistoryBytes)
	}
	if limit := baseHeap + hostileHistoryBytes + uint64(peakConns)*hostileConnOverhead; peakHeap > limit {
		t.Errorf("heap in use peaked at %d KiB, over the baseline plus the history bound plus %d KiB per connection (%d KiB)",
			peakHeap>>10, hostileConnOverhead>>10, limit>>10)
	}
	t.Logf("%d messages delivered in order during the attack", sent)
	if sent < 10 { // throughput under attack depends on the machine; silence does not
		t.Fatalf("only %d messages got through", sent)
	}

	sub.Close()
	pub.Close()
	waitFor(t, "every connection to end", func() bool { return srv.Connections() == 0 })
	waitFor(t, "goroutines to return to baseline", func() bool { return runtime.NumGoroutine() <= baseGoroutines+5 })
	var after uint64
	waitFor(t, "memory to return to baseline", func() bool {
		after = heapInUse()
		return after < baseHeap+hostileHistoryBytes+8<<20 // the history stays until it expires
	})
	t.Logf("heap in use: %d KiB before, %d KiB after", baseHeap>>10, after>>10)
}

// runAttacker is the attacking process of TestHostileClientsDoNotHurtOthers:
// TestMain runs it instead of the tests when HERALD_HOSTILE_TARGET is set.
func runAttacker(url string) {
	hostport := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/ws")
	ctx, cancel := context.WithTimeout(context.Background(), hostileDuration())
	defer cancel()
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() { attack(ctx, i%7, hostport, url) })
	}
	wg.Wait()
}
