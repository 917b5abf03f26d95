package broker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/heraldhq/herald/protocol"
)

// The memory broker's write-ahead log (DataDir/wal, see wal.go) holds every
// publication since the last start. A start after a graceful stop loads
// streams.json, which Close wrote, and ignores the log (Close deleted it);
// a start after a crash replays the log. Either way the start then writes
// the whole state as the first segment of a new log and deletes the old
// segments, so that one log always describes the broker. While it runs,
// the sweeper deletes the oldest segments once all their records have left
// history.

// bootID returns an identifier of the running operating-system boot, or ""
// when it cannot tell. A log written during the same boot kept every record
// that a killed process had written: only a power cut or a kernel crash
// loses what was not forced to disk. A variable for tests.
var bootID = func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// openLog replays the log unless the streams came from streams.json, and
// starts a new log holding the broker's state.
func (m *Memory) openLog(loaded bool) error {
	dir := filepath.Join(m.dataDir, walDirName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("herald: broker: write-ahead log: %w", err)
	}
	temps, _ := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix+".tmp-*"))
	for _, t := range temps {
		os.Remove(t)
	}
	seqs, err := listSegments(dir)
	if err != nil {
		return fmt.Errorf("herald: broker: write-ahead log: %w", err)
	}
	next := uint64(1)
	if len(seqs) > 0 {
		next = seqs[len(seqs)-1] + 1
	}
	if !loaded && len(seqs) > 0 {
		start := time.Now()
		m.replay(dir, seqs)
		m.log.Info("herald: broker replayed its write-ahead log", "dir", dir, "segments", len(seqs),
			"channels", len(m.channels), "took", time.Since(start).Round(time.Millisecond))
	}
	now := time.Now().UnixNano()
	w, err := newWAL(dir, next, m.fsync, m.fsyncEvery, bootID(), func(emit func(*walRecord)) {
		for _, s := range m.channels {
			s.checkpoint(now, emit)
		}
	})
	if err != nil {
		return fmt.Errorf("herald: broker: write-ahead log: %w", err)
	}
	m.wal = w
	for _, seq := range seqs {
		if err := os.Remove(segmentPath(dir, seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("herald: broker cannot delete a replayed log segment", "file", segmentPath(dir, seq), "err", err)
		}
	}
	return nil
}

// replay rebuilds the streams from the log's segments, stopping in each at
// its first damaged record. It then keeps the streams' epochs only when
// every acknowledged publication is known to be in them: the log is
// undamaged but for the newest segment's tail (where a write cut short
// lies), and either the last run forced every publish to disk before
// acknowledging it (FsyncAlways) or this is the boot it ran in, so that the
// operating system kept all it had written. Otherwise every channel starts
// with a new epoch, so that clients are told they lost messages rather
// than handed reused offsets.
func (m *Memory) replay(dir string, seqs []uint64) {
	var meta walRecord
	var damage []string
	skipped := 0
	for i, seq := range seqs {
		path := segmentPath(dir, seq)
		last := i == len(seqs)-1
		if i > 0 && seq != seqs[i-1]+1 {
			damage = append(damage, fmt.Sprintf("segments %d to %d missing", seqs[i-1]+1, seq-1))
		}
		good, err := readSegment(path, func(r walRecord) {
			if r.kind == recMeta {
				meta = r
			} else if !m.apply(&r) {
				skipped++
			}
		})
		switch {
		case err != nil:
			m.log.Warn("herald: broker write-ahead log damaged: replayed up to the last good record, dropped the rest of the segment",
				"file", path, "good_bytes", good, "err", err)
			if !last {
				damage = append(damage, fmt.Sprintf("%s damaged after byte %d", filepath.Base(path), good))
			}
		case good == 0 && !last:
			damage = append(damage, filepath.Base(path)+" empty")
		}
	}
	if skipped > 0 {
		m.log.Warn("herald: broker skipped log records beyond the channel bound or with an invalid channel; those channels start with new epochs",
			"records", skipped, "max_channels", m.maxChannels)
	}
	now := time.Now().UnixNano()
	for name, s := range m.channels {
		s.trim(now)
		if s.idle(now) {
			s.kill()
			delete(m.channels, name)
		}
	}
	switch {
	case len(damage) > 0:
		m.log.Error("herald: broker write-ahead log damaged before its end; every channel starts with a new epoch",
			"damage", strings.Join(damage, "; "), "channels", len(m.channels))
		m.dropAll()
	case meta.mode != FsyncAlways && (meta.boot == "" || meta.boot != bootID()):
		m.log.Warn("herald: broker stopped without saving, and the machine restarted since: publications not yet forced to disk may be lost; every channel starts with a new epoch",
			"fsync", meta.mode.String(), "channels", len(m.channels))
		m.dropAll()
	}
}

// apply replays one record, and reports false when it was skipped because
// the broker holds as many channels as it may or the name is invalid.
// Records of a channel come in offset order within an epoch; a later epoch
// replaces the stream, and a gap in offsets drops the history before it.
func (m *Memory) apply(r *walRecord) bool {
	s := m.channels[r.channel]
	if s == nil || s.epoch != r.epoch {
		if s == nil && m.maxChannels > 0 && len(m.channels) >= m.maxChannels {
			return false
		}
		if protocol.ValidateChannel(r.channel) != nil {
			return false
		}
		if s != nil {
			s.kill()
		}
		s = newStream(r.channel, r.epoch, m.history.For(r.channel), r.at, &m.held)
		s.offset = r.offset
		if r.kind == recPublish {
			s.offset--
		}
		m.channels[r.channel] = s
	}
	active := max(s.active, r.at)
	switch r.kind {
	case recPosition:
		if r.offset > s.offset {
			s.reset(r.offset)
		}
	case recKey:
		if _, ok := s.keys[r.key]; !ok && r.key != "" && r.offset <= s.offset {
			s.addKey(r.key, keyRec{offset: r.offset, at: r.at})
		}
	case recPublish:
		if r.offset <= s.offset {
			return true
		}
		if r.offset > s.offset+1 {
			s.reset(r.offset - 1)
		}
		s.append(r.data, r.key, fromPtr(r.from), r.at)
	}
	s.active = active
	return true
}

// dropAll forgets every stream: their next use starts a new epoch.
func (m *Memory) dropAll() {
	for name, s := range m.channels {
		s.kill()
		delete(m.channels, name)
	}
}

// checkpoint emits the records that rebuild the stream: its position before
// its history, the keys whose publication has left history, and each
// publication of history with its key. A dead or idle stream emits nothing.
func (s *memStream) checkpoint(now int64, emit func(*walRecord)) {
	s.trim(now)
	if s.dead || s.idle(now) {
		return
	}
	first := s.offset - uint64(s.hist.n)
	emit(&walRecord{kind: recPosition, channel: s.channel, epoch: s.epoch, offset: first, at: s.active})
	var keyOf map[uint64]string
	for _, k := range s.keyq[s.keyqHead:] {
		if s.keys[k.key] != k.keyRec {
			continue
		}
		if k.offset <= first {
			emit(&walRecord{kind: recKey, channel: s.channel, epoch: s.epoch, offset: k.offset, at: k.at, key: k.key})
			continue
		}
		if keyOf == nil {
			keyOf = make(map[uint64]string)
		}
		keyOf[k.offset] = k.key
	}
	for i := range s.hist.n {
		e := s.hist.at(i)
		off := first + 1 + uint64(i)
		emit(&walRecord{kind: recPublish, channel: s.channel, epoch: s.epoch, offset: off, at: e.at, key: keyOf[off], data: e.data, from: fromOf(e.from)})
	}
}

// dropDeadSegments deletes the oldest sealed segments of the log whose
// records have all left history: for every channel it holds records of,
// the stream is gone, has a new epoch, or no longer holds the segment's
// newest offset of it, in history or as an idempotency key.
func (m *Memory) dropDeadSegments() {
	if m.wal == nil {
		return
	}
	n := 0
	for _, seg := range m.wal.sealed() {
		if m.segmentLive(seg) {
			break
		}
		n++
	}
	if n == 0 {
		return
	}
	if err := m.wal.dropOldest(n); err != nil {
		m.log.Warn("herald: broker cannot delete old log segments", "err", err)
	}
}

func (m *Memory) segmentLive(seg *segment) bool {
	for ch, ref := range seg.chans {
		m.mu.RLock()
		s := m.channels[ch]
		m.mu.RUnlock()
		if s == nil {
			continue
		}
		s.mu.Lock()
		live := !s.dead && s.epoch == ref.epoch && s.floor() <= ref.max
		s.mu.Unlock()
		if live {
			return true
		}
	}
	return false
}

// removeLog deletes every segment of the log, after Close saved the
// streams to streams.json or before NewMemory loads them from it.
func (m *Memory) removeLog() error {
	dir := filepath.Join(m.dataDir, walDirName)
	seqs, err := listSegments(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var errs []error
	for _, seq := range seqs {
		if err := os.Remove(segmentPath(dir, seq)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(seqs) > 0 {
		errs = append(errs, syncDir(dir))
	}
	return errors.Join(append(errs, err)...)
}

// logPublish writes the publication at the stream's next offset to the
// log, and with FsyncAlways waits until it is on disk. Called with s.mu
// held, so that the log holds a channel's publications in offset order and
// none is delivered before it is logged.
func (m *Memory) logPublish(s *memStream, data []byte, key string, from *From, now int64) error {
	if m.wal == nil {
		return nil
	}
	end, err := m.wal.append(&walRecord{kind: recPublish, channel: s.channel, epoch: s.epoch, offset: s.offset + 1, at: now, key: key, data: data, from: fromOf(from)})
	if err == nil && m.fsync == FsyncAlways {
		err = m.wal.syncTo(end)
	}
	if err != nil {
		return fmt.Errorf("herald: broker: %w", err)
	}
	return nil
}

// closeLog stops the log at Close. Once the streams were saved the log is
// deleted; otherwise it is forced to disk for the next start to replay.
func (m *Memory) closeLog(saved bool) {
	if m.wal == nil {
		return
	}
	if err := m.wal.close(!saved); err != nil {
		m.log.Error("herald: broker cannot close its write-ahead log", "err", err)
	}
	if saved {
		if err := m.removeLog(); err != nil {
			m.log.Warn("herald: broker cannot delete its write-ahead log after saving the streams", "err", err)
		}
	}
}
