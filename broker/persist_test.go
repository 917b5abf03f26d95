package broker_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heraldhq/herald/broker"
)

func streamsFile(dir string) string { return filepath.Join(dir, "streams.json") }

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func TestMemoryPersistenceRoundTrip(t *testing.T) {
	dir := t.TempDir()
	m1 := broker.NewMemory(&broker.MemoryOptions{DataDir: dir})
	var since broker.StreamPosition
	for i, data := range []string{`"a"`, `"b"`, `{"c":3}`, `"d"`, `"e"`} {
		pos := mustPublish(t, m1, "chat:a", data, []string{"", "", "k3", "", ""}[i])
		if i == 1 {
			since = pos
		}
	}
	empty := mustPosition(t, m1, "empty")
	if err := m1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 || entries[0].Name() != "lock" || entries[1].Name() != "streams.json" || entries[2].Name() != "wal" {
		t.Fatalf("data dir after Close holds %v, want lock, streams.json and wal only", entries)
	}
	if segs, _ := os.ReadDir(filepath.Join(dir, "wal")); len(segs) != 0 {
		t.Fatalf("wal after Close holds %v, want nothing: streams.json has it all", segs)
	}

	m2 := broker.NewMemory(&broker.MemoryOptions{DataDir: dir})
	defer m2.Close()
	if exists(t, streamsFile(dir)) {
		t.Error("streams.json still there after it was loaded")
	}
	data, err := historyData(m2, "chat:a", since)
	if err != nil || data != `{"c":3} "d" "e"` {
		t.Errorf("History since %v after restart = %q, %v; want the 3 publications after it", since, data, err)
	}
	if pos := mustPublish(t, m2, "chat:a", `"retry"`, "k3"); pos != (broker.StreamPosition{Epoch: since.Epoch, Offset: 3}) {
		t.Errorf("Publish with key k3 after restart = %v, want the first publication %s/3", pos, since.Epoch)
	}
	if pos := mustPublish(t, m2, "chat:a", `"f"`, ""); pos != (broker.StreamPosition{Epoch: since.Epoch, Offset: 6}) {
		t.Errorf("next Publish after restart = %v, want %s/6", pos, since.Epoch)
	}
	if pos := mustPosition(t, m2, "empty"); pos != empty {
		t.Errorf("empty channel after restart = %v, want %v", pos, empty)
	}
}

func TestMemoryPersistenceAppliesBoundsAtLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		opts := &broker.MemoryOptions{History: broker.HistoryOptions{Size: 3, TTL: time.Minute}, DataDir: dir}
		m1 := broker.NewMemory(&broker.MemoryOptions{History: broker.HistoryOptions{TTL: time.Minute}, DataDir: dir})
		mustPublish(t, m1, "old", `1`, "")
		first := mustPublish(t, m1, "ch", `"a"`, "ka")
		time.Sleep(40 * time.Second)
		for _, name := range []string{"b", "c", "d", "e"} {
			mustPublish(t, m1, "ch", `"`+name+`"`, "k"+name)
		}
		if err := m1.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Second) // a is 70s old, b-e 30s: TTL 1 minute

		m2 := broker.NewMemory(opts) // and size 3: b is dropped too
		defer m2.Close()
		at := func(off uint64) broker.StreamPosition { return broker.StreamPosition{Epoch: first.Epoch, Offset: off} }
		if data, err := historyData(m2, "ch", at(2)); err != nil || data != `"c" "d" "e"` {
			t.Errorf("History since 2 = %q, %v; want c d e", data, err)
		}
		if _, err := historyData(m2, "ch", at(1)); !errors.Is(err, broker.ErrUnrecoverable) {
			t.Errorf("History since 1 (b beyond size 3): %v, want ErrUnrecoverable", err)
		}
		if pos := mustPublish(t, m2, "ch", `"b"`, "kb"); pos != at(2) {
			t.Errorf("key of b (30s old) = %v, want %v", pos, at(2))
		}
		if pos := mustPublish(t, m2, "ch", `"a"`, "ka"); pos != at(6) {
			t.Errorf("key of a (70s old) = %v, want a new publication %v", pos, at(6))
		}
		if pos := mustPosition(t, m2, "old"); pos.Offset != 0 {
			t.Errorf("channel idle for 70s with TTL 1m = %v after restart, want a new stream", pos)
		}
	})
}

func TestMemoryCorruptFileSetAside(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":        "{not json",
		"empty":          "",
		"wrong version":  `{"version":99,"streams":[]}`,
		"bad history":    `{"version":1,"streams":[{"channel":"ch","epoch":"e","offset":1,"history":[{"at":1,"data":"MQ=="},{"at":2,"data":"Mg=="}]}]}`,
		"bad key":        `{"version":1,"streams":[{"channel":"ch","epoch":"e","offset":1,"keys":[{"key":"k","offset":7,"at":1}]}]}`,
		"channel twice":  `{"version":1,"streams":[{"channel":"ch","epoch":"e","offset":1},{"channel":"ch","epoch":"f","offset":2}]}`,
		"missing epoch":  `{"version":1,"streams":[{"channel":"ch","offset":1}]}`,
		"trailing bytes": `{"version":1,"streams":[]} x`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(streamsFile(dir), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			m := broker.NewMemory(&broker.MemoryOptions{DataDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			defer m.Close()
			aside, _ := filepath.Glob(streamsFile(dir) + ".corrupt-*")
			if len(aside) != 1 || exists(t, streamsFile(dir)) {
				t.Fatalf("after loading a corrupt file: set aside %v, streams.json present %v", aside, exists(t, streamsFile(dir)))
			}
			if kept, _ := os.ReadFile(aside[0]); string(kept) != content {
				t.Errorf("file set aside holds %q, want the original %q", kept, content)
			}
			if !strings.Contains(logs.String(), "set aside") || !strings.Contains(logs.String(), aside[0]) {
				t.Errorf("log does not report the file set aside: %s", logs.String())
			}
			if pos := mustPosition(t, m, "ch"); pos.Epoch == "e" || pos.Offset != 0 {
				t.Errorf("Position = %v, want a new stream", pos)
			}
		})
	}
}

func TestMemoryDataDirUnusable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	m := broker.NewMemory(&broker.MemoryOptions{DataDir: file, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "unusable") {
		t.Errorf("NewMemory on a data dir that is a file logged %q, want a report", logs.String())
	}
	mustPublish(t, m, "ch", `1`, "")
	err := m.Close()
	if err == nil {
		t.Error("Close saved into a data dir that is a file")
	}
	if again := m.Close(); again != err {
		t.Errorf("second Close = %v, want the first's %v", again, err)
	}
}

func TestMemoryRestoreSkipsInvalidRecords(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UnixNano()
	content := fmt.Sprintf(`{"version":1,"streams":[
		{"channel":"bad name","epoch":"e1","offset":1,"active":%[1]d,"history":[{"at":%[1]d,"data":"MQ=="}]},
		{"channel":"bad-epoch","epoch":"a\nb","offset":1,"active":%[1]d},
		{"channel":"gap","epoch":"e3","offset":4,"active":%[1]d,"history":[
			{"at":%[1]d,"data":"MQ=="},{"at":%[1]d,"data":"ew=="},{"at":%[1]d,"data":"Mw=="},{"at":%[1]d,"data":"NA=="}]},
		{"channel":"ok","epoch":"e4","offset":1,"active":%[1]d,"history":[{"at":%[1]d,"data":"MQ=="}]}]}`, now)
	if err := os.WriteFile(streamsFile(dir), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	m := broker.NewMemory(&broker.MemoryOptions{DataDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer m.Close()
	if pos := mustPosition(t, m, "ok"); pos != (broker.StreamPosition{Epoch: "e4", Offset: 1}) {
		t.Errorf("valid channel after restore = %v, want e4/1", pos)
	}
	if pos := mustPosition(t, m, "bad-epoch"); pos.Offset != 0 {
		t.Errorf("channel saved with an invalid epoch = %v, want a new stream", pos)
	}
	// Offset 2 of "gap" is not JSON: it goes with offset 1, and 3 and 4 stay.
	if data, err := historyData(m, "gap", broker.StreamPosition{Epoch: "e3", Offset: 2}); err != nil || data != "3 4" {
		t.Errorf("gap: History since 2 = %q, %v; want 3 4", data, err)
	}
	if _, err := historyData(m, "gap", broker.StreamPosition{Epoch: "e3", Offset: 1}); !errors.Is(err, broker.ErrUnrecoverable) {
		t.Errorf("gap: History since 1, across the publication that is not JSON: %v, want ErrUnrecoverable", err)
	}
	if n := m.Channels(); n != 3 {
		t.Errorf("Channels = %d, want ok, gap and the new bad-epoch: the invalid name is not restored", n)
	}
	for _, want := range []string{"invalid name", `channel="bad name"`, "invalid epoch", "not JSON", "offset=2"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

func TestMemoryKeepsNewestCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	for i := range 5 {
		if err := os.WriteFile(streamsFile(dir), []byte(fmt.Sprint("garbage ", i)), 0o600); err != nil {
			t.Fatal(err)
		}
		m := broker.NewMemory(&broker.MemoryOptions{DataDir: dir})
		m.Close()
		os.Remove(streamsFile(dir))
	}
	aside, _ := filepath.Glob(streamsFile(dir) + ".corrupt-*")
	var kept []string
	for _, f := range aside {
		b, _ := os.ReadFile(f)
		kept = append(kept, string(b))
	}
	if want := []string{"garbage 2", "garbage 3", "garbage 4"}; !slices.Equal(kept, want) {
		t.Errorf("files set aside after 5 corrupt loads hold %q, want the newest 3 %q", kept, want)
	}
}

func TestMemoryLoadingLeftoverSetAside(t *testing.T) {
	dir := t.TempDir()
	m1 := broker.NewMemory(&broker.MemoryOptions{DataDir: dir})
	saved := mustPublish(t, m1, "ch", `1`, "")
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	// A start that stopped while loading: the file moved to .loading.
	if err := os.Rename(streamsFile(dir), streamsFile(dir)+".loading"); err != nil {
		t.Fatal(err)
	}
	m2 := broker.NewMemory(&broker.MemoryOptions{DataDir: dir})
	defer m2.Close()
	if pos := mustPosition(t, m2, "ch"); pos.Epoch == saved.Epoch {
		t.Errorf("Position after a load that did not finish = %v, want a new epoch", pos)
	}
	aside, _ := filepath.Glob(streamsFile(dir) + ".corrupt-*")
	if len(aside) != 1 || exists(t, streamsFile(dir)+".loading") {
		t.Errorf("after a load that did not finish: set aside %v, .loading still there: %v", aside, exists(t, streamsFile(dir)+".loading"))
	}
}

func TestMemoryDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	m1, err := broker.OpenMemory(&broker.MemoryOptions{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	pos := mustPublish(t, m1, "ch", `1`, "")
	if m, err := broker.OpenMemory(&broker.MemoryOptions{DataDir: dir}); !errors.Is(err, broker.ErrDataDirInUse) || !strings.Contains(err.Error(), dir) {
		t.Errorf("OpenMemory on a data dir in use = %v, %v; want ErrDataDirInUse naming the dir", m, err)
	}
	var logs bytes.Buffer
	m2 := broker.NewMemory(&broker.MemoryOptions{DataDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "in use") {
		t.Errorf("NewMemory on a data dir in use logged %q", logs.String())
	}
	mustPublish(t, m2, "other", `1`, "")
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m2.Close(); err != nil { // saves nothing over m1's streams
		t.Fatal(err)
	}
	m3, err := broker.OpenMemory(&broker.MemoryOptions{DataDir: dir})
	if err != nil {
		t.Fatalf("OpenMemory once the holder closed: %v", err)
	}
	defer m3.Close()
	if got := mustPosition(t, m3, "ch"); got != pos {
		t.Errorf("after restart, ch = %v, want %v from the broker that held the dir", got, pos)
	}
}
