// Package brokertest is the conformance suite of Herald brokers. Every
// broker.Broker implementation runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		brokertest.Run(t, func(t *testing.T, opts broker.HistoryOptions) broker.Broker {
//			return broker.NewMemory(&broker.MemoryOptions{History: opts})
//		})
//	}
//
// The suite checks what the server relies on: offsets that grow by exactly
// one under concurrent publishers, delivery in offset order, history bounded
// by count and age, recovery that is exact or refused, idempotent publishes,
// a subscribe-then-read-history sequence that leaves no gap while
// publishers run, and Run's guards (broker.ErrNoDeliver, broker.ErrRunning). Some subtests sleep for real (history TTLs of a few
// hundred milliseconds), because a broker backed by a server cannot run on a
// fake clock.
package brokertest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker"
)

// Factory returns a new broker whose channels keep history within opts
// (zero fields mean the broker's defaults). Brokers that share a server
// (such as Redis) must isolate the brokers of different calls, for example
// by a key prefix. The suite closes the broker; the factory may register its
// own cleanup with t.Cleanup.
type Factory func(t *testing.T, opts broker.HistoryOptions) broker.Broker

// waitTimeout bounds every wait for a delivery.
const waitTimeout = 10 * time.Second

// Run runs the conformance suite against the brokers newBroker returns.
func Run(t *testing.T, newBroker Factory) {
	tests := []struct {
		name string
		run  func(t *testing.T, newBroker Factory)
	}{
		{"EmptyChannel", testEmptyChannel},
		{"ConcurrentPublishers", testConcurrentPublishers},
		{"HistorySize", testHistorySize},
		{"HistoryTTL", testHistoryTTL},
		{"Recovery", testRecovery},
		{"Page", testPage}, {"PageBounds", testPageBounds}, {"PageMetadata", testPageMetadata},
		{"Unrecoverable", testUnrecoverable},
		{"Idempotency", testIdempotency},
		{"IdempotencyConcurrent", testIdempotencyConcurrent},
		{"SubscribeWhilePublishing", testSubscribeWhilePublishing},
		{"Unsubscribe", testUnsubscribe},
		{"DataCopied", testDataCopied},
		{"RunGuards", testRunGuards},
		{"Close", testClose},
		{"PresenceMembers", testPresenceMembers}, {"PresenceEvents", testPresenceEvents}, {"PresenceGuards", testPresenceGuards},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newBroker) })
	}
}

// harness is a broker under test with Run delivering to a recorder.
type harness struct {
	t       *testing.T
	b       broker.Broker
	rec     *recorder
	runDone chan error // receives Run's result
}

// start creates a broker, runs it, and waits until deliveries flow.
func start(t *testing.T, newBroker Factory, opts broker.HistoryOptions) *harness {
	t.Helper()
	b := newBroker(t, opts)
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	h := &harness{t: t, b: b, rec: newRecorder(), runDone: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { h.runDone <- b.Run(ctx, h.rec.deliver) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-h.runDone:
			if !errors.Is(err, context.Canceled) && !errors.Is(err, broker.ErrClosed) {
				t.Errorf("Run returned %v after its context ended; want context.Canceled", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return within %v after its context ended", waitTimeout)
		}
		h.rec.report(t)
	})
	h.waitRunning()
	return h
}

// waitRunning publishes on a probe channel until a publication is
// delivered: Run has no readiness signal, and publications made before it
// is ready need not be delivered.
func (h *harness) waitRunning() {
	h.t.Helper()
	probe := h.channel("probe")
	h.subscribe(probe)
	deadline := time.Now().Add(waitTimeout)
	for len(h.rec.get(probe)) == 0 {
		if time.Now().After(deadline) {
			h.t.Fatalf("no publication delivered within %v of Run", waitTimeout)
		}
		h.publish(probe, `"probe"`, "")
		h.rec.waitFor(probe, 1, 20*time.Millisecond)
	}
}

// channel returns a channel name unique to this run.
func (h *harness) channel(name string) string {
	return "brokertest:" + name + "-" + broker.NewEpoch()
}

func (h *harness) subscribe(ch string) {
	h.t.Helper()
	if err := h.b.Subscribe(context.Background(), ch); err != nil {
		h.t.Fatalf("Subscribe(%q): %v", ch, err)
	}
}

func (h *harness) publish(ch, data, key string) broker.StreamPosition {
	h.t.Helper()
	pos, err := h.b.Publish(context.Background(), ch, []byte(data), broker.PublishOptions{Key: key})
	if err != nil {
		h.t.Fatalf("Publish(%q): %v", ch, err)
	}
	return pos
}

func (h *harness) position(ch string) broker.StreamPosition {
	h.t.Helper()
	pos, err := h.b.Position(context.Background(), ch)
	if err != nil {
		h.t.Fatalf("Position(%q): %v", ch, err)
	}
	return pos
}

// history reads the history after since and checks the answer's shape:
// either ErrUnrecoverable with no publications, or publications that follow
// since one by one.
func (h *harness) history(ch string, since broker.StreamPosition, limit int) ([]broker.Publication, broker.StreamPosition, error) {
	h.t.Helper()
	pubs, pos, err := h.b.History(context.Background(), ch, since, limit)
	if err != nil && !errors.Is(err, broker.ErrUnrecoverable) {
		h.t.Fatalf("History(%q, %v): %v", ch, since, err)
	}
	if pos.Epoch == "" {
		h.t.Errorf("History(%q, %v) returned position %v without epoch", ch, since, pos)
	}
	if err != nil && len(pubs) > 0 {
		h.t.Errorf("History(%q, %v) returned %d publications with %v", ch, since, len(pubs), err)
	}
	for i, p := range pubs {
		want := since.Offset + 1 + uint64(i)
		if p.Channel != ch || p.Epoch != pos.Epoch || p.Offset != want {
			h.t.Fatalf("History(%q, %v)[%d] = %s/%s/%d, want %s/%s/%d", ch, since, i, p.Channel, p.Epoch, p.Offset, ch, pos.Epoch, want)
		}
	}
	return pubs, pos, err
}

// wantData checks that pubs carry want, in order.
func wantData(t *testing.T, what string, pubs []broker.Publication, want ...string) {
	t.Helper()
	got := make([]string, len(pubs))
	for i, p := range pubs {
		got[i] = string(p.Data)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: data %q, want %q", what, got, want)
	}
}

// recorder keeps every delivered publication per channel and flags
// deliveries out of order or concurrent for one channel.
type recorder struct {
	mu       sync.Mutex
	pubs     map[string][]broker.Publication
	busy     map[string]bool
	problems []string
	changed  chan struct{} // closed and replaced at every delivery
}

func newRecorder() *recorder {
	return &recorder{pubs: make(map[string][]broker.Publication), busy: make(map[string]bool), changed: make(chan struct{})}
}

func (r *recorder) deliver(p broker.Publication) {
	p.Data = slices.Clone(p.Data)
	r.mu.Lock()
	if r.busy[p.Channel] {
		r.problemf("deliver called concurrently for channel %s", p.Channel)
	}
	r.busy[p.Channel] = true
	r.mu.Unlock()

	runtime.Gosched() // widen the window in which a concurrent call shows

	r.mu.Lock()
	defer r.mu.Unlock()
	r.busy[p.Channel] = false
	list := r.pubs[p.Channel]
	if n := len(list); n > 0 && list[n-1].Epoch == p.Epoch && p.Offset != list[n-1].Offset+1 {
		r.problemf("channel %s: delivered offset %d after %d", p.Channel, p.Offset, list[n-1].Offset)
	}
	r.pubs[p.Channel] = append(list, p)
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) problemf(format string, args ...any) {
	if len(r.problems) < 10 {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

func (r *recorder) report(t *testing.T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.problems {
		t.Error(p)
	}
}

// get returns the publications delivered for ch so far.
func (r *recorder) get(ch string) []broker.Publication {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pubs[ch])
}

// waitFor waits until a publication with offset >= offset was delivered for
// ch, and reports whether one was.
func (r *recorder) waitFor(ch string, offset uint64, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		r.mu.Lock()
		list, changed := r.pubs[ch], r.changed
		r.mu.Unlock()
		if len(list) > 0 && list[len(list)-1].Offset >= offset {
			return true
		}
		select {
		case <-changed:
		case <-timer.C:
			return false
		}
	}
}

// delivered waits for offset on ch and returns what was delivered.
func (h *harness) delivered(ch string, offset uint64) []broker.Publication {
	h.t.Helper()
	if !h.rec.waitFor(ch, offset, waitTimeout) {
		h.t.Fatalf("channel %s: offset %d not delivered within %v (got %d publications)", ch, offset, waitTimeout, len(h.rec.get(ch)))
	}
	return h.rec.get(ch)
}
