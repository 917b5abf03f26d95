package herald_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// batchBroker is a memory broker that takes publishes in batches, as the
// Redis broker does, and records the size of each batch.
type batchBroker struct {
	*broker.Memory
	mu      sync.Mutex
	batches []int
}

func (b *batchBroker) PublishBatch(ctx context.Context, reqs []broker.PublishRequest, res []broker.PublishResult) {
	b.mu.Lock()
	b.batches = append(b.batches, len(reqs))
	b.mu.Unlock()
	for i, r := range reqs {
		res[i].Pos, res[i].Err = b.Publish(ctx, r.Channel, r.Data, r.Opts)
	}
}

// Publishes that arrive together go to a batch-capable broker together,
// and every request is still answered in the order it was sent: a ping
// among the publishes is answered after the publishes before it and before
// those after it.
func TestPublishesArrivingTogetherGoToBrokerTogether(t *testing.T) {
	b := &batchBroker{Memory: broker.NewMemory(nil)}
	t.Cleanup(func() { b.Close() })
	srv := startServer(t, &herald.Options{Broker: b, Rate: 1e6, Burst: 1e6})
	c := heraldtest.DialWelcome(t, srv.url, nil)
	c.Subscribe(t, 1, "feed", nil)

	// Seven publishes, a ping, seven more, in one write.
	var buf bytes.Buffer
	for id := 2; id <= 16; id++ {
		req := fmt.Sprintf(`{"type":"publish","id":%d,"channel":"feed","data":%d}`, id, id)
		if id == 9 {
			req = `{"type":"ping","id":9}`
		}
		if err := ws.WriteFrame(&buf, ws.MaskFrame(ws.NewTextFrame([]byte(req)))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.NetConn().Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	offset := 0.0
	for id := 2; id <= 16; {
		f, err := c.Next(5e9)
		if err != nil {
			t.Fatal(err)
		}
		if f.Type == "message" {
			continue
		}
		want := "published"
		if id == 9 {
			want = "pong"
		}
		if f.Type != want || f.ID != uint64(id) {
			t.Fatalf("reply %s, want %s with id %d", f, want, id)
		}
		if want == "published" {
			if o := f.Fields()["offset"].(float64); o <= offset {
				t.Fatalf("reply %s: offset not after %v", f, offset)
			} else {
				offset = o
			}
		}
		id++
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.batches) == 0 || len(b.batches) > 4 || b.batches[0] < 2 {
		t.Errorf("14 publishes sent in one write reached the broker in batches of %v, want them together around the ping", b.batches)
	}
}
