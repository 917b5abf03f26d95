package broker_test

import (
	"context"
	"testing"

	"github.com/heraldhq/herald/broker"
)

// TestMemoryKeepsMetadataAcrossRestart: a publication's time and sender
// survive a graceful restart (streams.json) and a crash (the log replayed,
// twice: the second time from the checkpoint the first restart wrote).
func TestMemoryKeepsMetadataAcrossRestart(t *testing.T) {
	from := broker.From{Client: "s_1", User: "alice"}
	publish := func(t *testing.T, m *broker.Memory) []broker.Publication {
		t.Helper()
		ctx := context.Background()
		if _, err := m.Publish(ctx, "chat", []byte(`"hi"`), broker.PublishOptions{From: from}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Publish(ctx, "chat", []byte(`"api"`), broker.PublishOptions{Key: "k"}); err != nil {
			t.Fatal(err)
		}
		return pageOf(t, m)
	}
	check := func(t *testing.T, what string, m *broker.Memory, want []broker.Publication) {
		t.Helper()
		got := pageOf(t, m)
		if len(got) != 2 || got[0].From != from || got[1].From != (broker.From{}) {
			t.Fatalf("%s: page %+v, want the sender kept", what, got)
		}
		for i := range got {
			if got[i].Time != want[i].Time || got[i].Time == 0 {
				t.Errorf("%s: offset %d at time %d, want %d", what, got[i].Offset, got[i].Time, want[i].Time)
			}
		}
	}
	t.Run("saved", func(t *testing.T) {
		dir := t.TempDir()
		m1 := broker.NewMemory(&broker.MemoryOptions{DataDir: dir})
		want := publish(t, m1)
		if err := m1.Close(); err != nil {
			t.Fatal(err)
		}
		m2 := broker.NewMemory(&broker.MemoryOptions{DataDir: dir})
		defer m2.Close()
		check(t, "after Close and restart", m2, want)
	})
	t.Run("crashed", func(t *testing.T) {
		dir := t.TempDir()
		m1, _ := openLogged(t, dir, broker.FsyncAlways)
		want := publish(t, m1)
		m1.Crash()
		m2, _ := openLogged(t, dir, broker.FsyncAlways)
		check(t, "after a crash", m2, want)
		m2.Crash()
		m3, _ := openLogged(t, dir, broker.FsyncAlways)
		check(t, "after a second crash", m3, want)
	})
}

func pageOf(t *testing.T, m *broker.Memory) []broker.Publication {
	t.Helper()
	p, err := m.Page(context.Background(), "chat", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	return p.Publications
}
