package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/heraldhq/herald/broker"
)

// walChannels are the channels the log tests publish on.
var walChannels = []string{"chat:a", "chat:b", "news", "x:y"}

// published is what a test publishes: per channel, the data of each
// offset (index 0 is offset 1) and the epoch.
type published struct {
	epoch map[string]string
	data  map[string][]string
}

// publishAll publishes n messages on each of walChannels, every third with a
// key, and returns what was acknowledged.
func publishAll(t *testing.T, m *broker.Memory, n int) published {
	t.Helper()
	p := published{epoch: map[string]string{}, data: map[string][]string{}}
	for i := range n {
		for _, ch := range walChannels {
			data := fmt.Sprintf(`{"ch":%q,"i":%d,"pad":%q}`, ch, i, strings.Repeat("x", i%50))
			key := ""
			if i%3 == 0 {
				key = fmt.Sprintf("k%d", i)
			}
			pos := mustPublish(t, m, ch, data, key)
			if pos.Offset != uint64(len(p.data[ch])+1) {
				t.Fatalf("publish %d on %s at %v", i, ch, pos)
			}
			p.epoch[ch] = pos.Epoch
			p.data[ch] = append(p.data[ch], data)
		}
	}
	return p
}

// checkKept fails unless m holds every publication of p at its epoch and
// offset, and answers a repeated key with the first publication.
func checkKept(t *testing.T, m *broker.Memory, p published) {
	t.Helper()
	for _, ch := range walChannels {
		pos := mustPosition(t, m, ch)
		if want := (broker.StreamPosition{Epoch: p.epoch[ch], Offset: uint64(len(p.data[ch]))}); pos != want {
			t.Fatalf("%s after restart at %v, want %v", ch, pos, want)
		}
		got, err := historyData(m, ch, broker.StreamPosition{Epoch: p.epoch[ch]})
		if err != nil || got != strings.Join(p.data[ch], " ") {
			t.Fatalf("%s history after restart: %v\n got %.200s\nwant %.200s", ch, err, got, strings.Join(p.data[ch], " "))
		}
		if pos := mustPublish(t, m, ch, `"again"`, "k0"); pos.Offset != 1 || pos.Epoch != p.epoch[ch] {
			t.Fatalf("%s: key k0 repeated after restart published at %v, want offset 1", ch, pos)
		}
	}
}

// checkPrefix fails unless every channel of m either has a new epoch, or
// has p's epoch and holds a prefix of p's publications, all it has, in
// order. It returns how many channels kept their epoch.
func checkPrefix(t *testing.T, m *broker.Memory, p published) int {
	t.Helper()
	kept := 0
	for _, ch := range walChannels {
		pos := mustPosition(t, m, ch)
		if pos.Epoch != p.epoch[ch] {
			if pos.Offset != 0 {
				t.Fatalf("%s has a new epoch at %v, want offset 0", ch, pos)
			}
			continue
		}
		kept++
		if pos.Offset > uint64(len(p.data[ch])) {
			t.Fatalf("%s at %v beyond the %d published", ch, pos, len(p.data[ch]))
		}
		pubs, _, err := m.History(context.Background(), ch, broker.StreamPosition{Epoch: pos.Epoch}, 0)
		if err != nil {
			// Damage before the tail dropped the oldest history: what is
			// left must still be the newest publications up to pos.
			pubs, _, err = m.History(context.Background(), ch, broker.StreamPosition{Epoch: pos.Epoch, Offset: pos.Offset}, 0)
		}
		if err != nil {
			t.Fatalf("%s history: %v", ch, err)
		}
		for _, pub := range pubs {
			if string(pub.Data) != p.data[ch][pub.Offset-1] {
				t.Fatalf("%s offset %d = %s, want %s", ch, pub.Offset, pub.Data, p.data[ch][pub.Offset-1])
			}
		}
	}
	return kept
}

func openLogged(t *testing.T, dir string, mode broker.FsyncMode) (*broker.Memory, *bytes.Buffer) {
	t.Helper()
	var log bytes.Buffer
	m, err := broker.OpenMemory(&broker.MemoryOptions{DataDir: dir, Fsync: mode, Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &log}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, &log
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

var modes = []broker.FsyncMode{broker.FsyncAlways, broker.FsyncInterval, broker.FsyncOff}

// TestWALReplaysAfterCrash: a broker stopped without Close (as by SIGKILL)
// comes back, in the same boot and in every mode, with every acknowledged
// publication and key at its epoch and offset, twice in a row (the second
// time from the segment the first restart wrote).
func TestWALReplaysAfterCrash(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			m1, _ := openLogged(t, dir, mode)
			p := publishAll(t, m1, 40)
			m1.Crash()
			m2, log := openLogged(t, dir, mode)
			checkKept(t, m2, p)
			if !strings.Contains(log.String(), "replayed its write-ahead log") {
				t.Errorf("no replay logged:\n%s", log)
			}
			m2.Crash()
			m3, _ := openLogged(t, dir, mode)
			checkKept(t, m3, p)
		})
	}
}

// TestWALNewEpochsAfterReboot: after a crash followed by a new boot (a power
// cut), interval and off may have lost acknowledged publications, so every
// channel starts with a new epoch; always keeps them all.
func TestWALNewEpochsAfterReboot(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			defer broker.SetBootID("boot-1")()
			m1, _ := openLogged(t, dir, mode)
			p := publishAll(t, m1, 10)
			m1.Crash()
			broker.SetBootID("boot-2")
			m2, log := openLogged(t, dir, mode)
			if mode == broker.FsyncAlways {
				checkKept(t, m2, p)
				return
			}
			if kept := checkPrefix(t, m2, p); kept != 0 {
				t.Errorf("%d channels kept their epoch after a reboot with fsync %s", kept, mode)
			}
			if !strings.Contains(log.String(), "new epoch") {
				t.Errorf("new epochs not logged:\n%s", log)
			}
		})
	}
}

// crashedLog publishes on a broker with small segments, crashes it, and
// returns the data dir, what was acknowledged and the segment files.
func crashedLog(t *testing.T) (string, published, []string) {
	t.Helper()
	defer broker.SetSegmentBytes(4 << 10)()
	dir := t.TempDir()
	m, _ := openLogged(t, dir, broker.FsyncAlways)
	p := publishAll(t, m, 60)
	m.Crash()
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.log"))
	slices.Sort(segs)
	if len(segs) < 4 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	return dir, p, segs
}

// TestWALTornTail cuts the newest segment at random byte positions: the
// broker starts, logs the damage, keeps the epochs (a cut tail is a write
// that was never acknowledged under always) and holds exactly the
// publications before the cut, never a damaged one.
func TestWALTornTail(t *testing.T) {
	dir, p, segs := crashedLog(t)
	last := segs[len(segs)-1]
	orig, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	for range 8 {
		cut := rand.IntN(len(orig))
		t.Run(fmt.Sprint("cut", cut), func(t *testing.T) {
			d := t.TempDir()
			os.CopyFS(d, os.DirFS(dir))
			if err := os.WriteFile(filepath.Join(d, "wal", filepath.Base(last)), orig[:cut], 0o644); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(d, "lock"))
			m, log := openLogged(t, d, broker.FsyncAlways)
			if kept := checkPrefix(t, m, p); kept != len(walChannels) {
				t.Errorf("%d of %d channels kept their epoch after a torn tail", kept, len(walChannels))
			}
			if cut > 0 && !strings.Contains(log.String(), "damaged") {
				// A cut at a record boundary leaves nothing damaged.
				t.Logf("cut at %d: no damage logged (a record boundary)", cut)
			}
		})
	}
}

// TestWALFlippedByte flips a byte in the middle of a segment. In the
// newest, the records before it are replayed and the rest dropped; in an
// older one, acknowledged publications after it are lost, so every channel
// gets a new epoch. No damaged record is replayed either way.
func TestWALFlippedByte(t *testing.T) {
	for _, which := range []string{"newest", "older"} {
		t.Run(which, func(t *testing.T) {
			dir, p, segs := crashedLog(t)
			seg := segs[len(segs)-1]
			if which == "older" {
				seg = segs[1]
			}
			b, _ := os.ReadFile(seg)
			b[len(b)/2] ^= 0x20
			os.WriteFile(seg, b, 0o644)
			m, log := openLogged(t, dir, broker.FsyncAlways)
			kept := checkPrefix(t, m, p)
			if !strings.Contains(log.String(), "damaged") {
				t.Errorf("damage not logged:\n%s", log)
			}
			if which == "older" && kept != 0 {
				t.Errorf("%d channels kept their epoch after damage before the log's end", kept)
			}
			if which == "newest" && kept == 0 {
				t.Errorf("no channel kept its epoch after damage in the newest segment")
			}
		})
	}
}

// TestWALEmptyOrMissingSegment: an older segment emptied or deleted loses
// acknowledged publications: the broker starts and every channel gets a new
// epoch. An empty newest segment (a crash right after it was created) loses
// nothing.
func TestWALEmptyOrMissingSegment(t *testing.T) {
	for _, tc := range []struct {
		name     string
		damage   func(segs []string)
		wantKept bool
	}{
		{"older empty", func(segs []string) { os.Truncate(segs[2], 0) }, false},
		{"older missing", func(segs []string) { os.Remove(segs[2]) }, false},
		{"newest empty", func(segs []string) {
			next := strings.Replace(segs[len(segs)-1], ".log", "", 1)
			var n uint64
			fmt.Sscan(filepath.Base(next), &n)
			os.WriteFile(filepath.Join(filepath.Dir(next), fmt.Sprintf("%020d.log", n+1)), nil, 0o644)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, p, segs := crashedLog(t)
			tc.damage(segs)
			m, log := openLogged(t, dir, broker.FsyncAlways)
			if tc.wantKept {
				checkKept(t, m, p)
				return
			}
			if kept := checkPrefix(t, m, p); kept != 0 {
				t.Errorf("%d channels kept their epoch", kept)
			}
			if !strings.Contains(log.String(), "damaged before its end") {
				t.Errorf("damage not logged:\n%s", log)
			}
		})
	}
}

// TestWALDiskBounded: segments whose records have all left history are
// deleted by the sweeper; the log stays a few segments long however much
// is published.
func TestWALDiskBounded(t *testing.T) {
	defer broker.SetSegmentBytes(8 << 10)()
	dir := t.TempDir()
	m, err := broker.OpenMemory(&broker.MemoryOptions{DataDir: dir, History: broker.HistoryOptions{Size: 10}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	most := 0
	for round := range 20 {
		for i := range 100 {
			mustPublish(t, m, walChannels[i%2], fmt.Sprintf(`"%d-%d %s"`, round, i, strings.Repeat("y", 100)), "")
		}
		m.SweepNow()
		segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.log"))
		most = max(most, len(segs))
	}
	// 10 publications of ~130 bytes per channel is under one segment: the
	// live history spans at most 2, plus the one being written.
	if most > 3 {
		t.Errorf("the log grew to %d segments of 8 KiB, want at most 3 (history of 2 x 10 publications)", most)
	}
	m.Crash()
	m2, _ := openLogged(t, dir, broker.FsyncInterval)
	got, err := historyData(m2, walChannels[0], broker.StreamPosition{Epoch: mustPosition(t, m2, walChannels[0]).Epoch, Offset: 990})
	if err != nil || !strings.HasPrefix(got, `"19-80 `) {
		t.Errorf("newest history after deleting old segments and a crash = %.40q, %v", got, err)
	}
}

// TestWALGroupCommit: concurrent publishes with FsyncAlways share fsyncs.
func TestWALGroupCommit(t *testing.T) {
	m, _ := openLogged(t, t.TempDir(), broker.FsyncAlways)
	const publishers, each = 8, 50
	var wg sync.WaitGroup
	for g := range publishers {
		wg.Go(func() {
			for i := range each {
				mustPublish(t, m, fmt.Sprintf("g%d", g), fmt.Sprint(i), "")
			}
		})
	}
	wg.Wait()
	if n := m.LogSyncs(); n == 0 || n >= publishers*each {
		t.Errorf("%d fsyncs for %d publishes, want fewer (and some)", n, publishers*each)
	}
}
