package brokertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker"
)

// page reads a page and checks its shape: publications of the channel's
// epoch, in ascending offsets without a gap, all below before.
func (h *harness) page(ch string, before uint64, limit int) broker.HistoryPage {
	h.t.Helper()
	p, err := h.b.Page(context.Background(), ch, before, limit)
	if err != nil {
		h.t.Fatalf("Page(%q, %d, %d): %v", ch, before, limit, err)
	}
	if p.Position.Epoch == "" {
		h.t.Errorf("Page(%q, %d, %d) returned position %v without epoch", ch, before, limit, p.Position)
	}
	for i, pub := range p.Publications {
		if pub.Channel != ch || pub.Epoch != p.Position.Epoch || (i > 0 && pub.Offset != p.Publications[i-1].Offset+1) ||
			(before > 0 && pub.Offset >= before) || pub.Offset > p.Position.Offset {
			h.t.Fatalf("Page(%q, %d, %d)[%d] = %s/%s/%d at position %v", ch, before, limit, i, pub.Channel, pub.Epoch, pub.Offset, p.Position)
		}
	}
	return p
}

// wantPage checks a page's data and more.
func wantPage(t *testing.T, what string, p broker.HistoryPage, more bool, data ...string) {
	t.Helper()
	wantData(t, what, p.Publications, data...)
	if p.More != more {
		t.Errorf("%s: more = %v, want %v", what, p.More, more)
	}
}

// testPage: pages read history backwards from the newest or from before,
// and say whether older publications are held.
func testPage(t *testing.T, newBroker Factory) {
	h := start(t, newBroker, broker.HistoryOptions{})
	ch := h.channel("page")
	empty := h.page(ch, 0, 10)
	wantPage(t, "Page of a new channel", empty, false)
	if empty.Position != h.position(ch) {
		t.Errorf("Page of a new channel at %v, Position %v", empty.Position, h.position(ch))
	}
	var pos broker.StreamPosition
	for i := 1; i <= 5; i++ {
		pos = h.publish(ch, fmt.Sprintf(`"m%d"`, i), "")
	}
	p := h.page(ch, 0, 2)
	if p.Position != pos {
		t.Errorf("Page at %v, want %v", p.Position, pos)
	}
	wantPage(t, "newest 2", p, true, `"m4"`, `"m5"`)
	wantPage(t, "2 before 4", h.page(ch, 4, 2), true, `"m2"`, `"m3"`)
	wantPage(t, "10 before 2", h.page(ch, 2, 10), false, `"m1"`)
	wantPage(t, "10 before 1", h.page(ch, 1, 10), false)
	wantPage(t, "newest 5", h.page(ch, 0, 5), false, `"m1"`, `"m2"`, `"m3"`, `"m4"`, `"m5"`)
	wantPage(t, "2 before 100", h.page(ch, 100, 2), true, `"m4"`, `"m5"`)
	wantPage(t, "1 before 6", h.page(ch, 6, 1), true, `"m5"`)
}

// testPageBounds: a page holds only what history holds, by count and by
// age.
func testPageBounds(t *testing.T, newBroker Factory) {
	h := start(t, newBroker, broker.HistoryOptions{Size: 3})
	ch := h.channel("pagesize")
	for i := 1; i <= 5; i++ {
		h.publish(ch, fmt.Sprintf(`"m%d"`, i), "")
	}
	wantPage(t, "size 3, newest 10", h.page(ch, 0, 10), false, `"m3"`, `"m4"`, `"m5"`)
	wantPage(t, "size 3, 10 before 4", h.page(ch, 4, 10), false, `"m3"`)
	wantPage(t, "size 3, 2 before 3", h.page(ch, 3, 2), false)

	const ttl = 300 * time.Millisecond
	h = start(t, newBroker, broker.HistoryOptions{TTL: ttl})
	ch = h.channel("pagettl")
	h.publish(ch, `"old"`, "")
	time.Sleep(ttl + 100*time.Millisecond)
	h.publish(ch, `"new"`, "")
	wantPage(t, "after the TTL", h.page(ch, 0, 10), false, `"new"`)
}

// testPageMetadata: a publication keeps its time and sender, the same in
// delivery, History and Page.
func testPageMetadata(t *testing.T, newBroker Factory) {
	h := start(t, newBroker, broker.HistoryOptions{})
	ch := h.channel("meta")
	h.subscribe(ch)
	from := broker.From{Client: "s_ABC", User: "al ice é"}
	before := time.Now().UnixMilli()
	pos, err := h.b.Publish(context.Background(), ch, []byte(`"hi"`), broker.PublishOptions{From: from})
	if err != nil {
		t.Fatal(err)
	}
	h.publish(ch, `"api"`, "")
	after := time.Now().UnixMilli()
	live := h.delivered(ch, pos.Offset+1)
	hist, _, err := h.history(ch, broker.StreamPosition{Epoch: pos.Epoch}, 0)
	if err != nil {
		t.Fatal(err)
	}
	page := h.page(ch, 0, 10).Publications
	for what, pubs := range map[string][]broker.Publication{"delivered": live, "History": hist, "Page": page} {
		if len(pubs) != 2 {
			t.Fatalf("%s: %d publications, want 2", what, len(pubs))
		}
		if p := pubs[0]; p.From != from || p.Time < before || p.Time > after {
			t.Errorf("%s: first has from %+v time %d; want %+v within [%d, %d]", what, p.From, p.Time, from, before, after)
		}
		if p := pubs[1]; p.From != (broker.From{}) || p.Time < pubs[0].Time || p.Time > after {
			t.Errorf("%s: second (no sender) has from %+v time %d", what, p.From, p.Time)
		}
		if pubs[0].Time != live[0].Time || pubs[1].Time != live[1].Time {
			t.Errorf("%s: times %d, %d differ from delivery's %d, %d", what, pubs[0].Time, pubs[1].Time, live[0].Time, live[1].Time)
		}
	}
}
