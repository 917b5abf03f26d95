package broker

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/heraldhq/herald/protocol"
)

// The memory broker's saved streams: DataDir/streams.json, written by Close
// through a temporary file, fsync and rename, and deleted by NewMemory as
// soon as it is read. Times are Unix nanoseconds.
const (
	streamsFile        = "streams.json"
	streamsFileVersion = 1
	lockFileName       = "lock"
	keepCorrupt        = 3 // files set aside kept, the newest
)

// ErrDataDirInUse is returned by OpenMemory when another broker, in this
// process or another, holds MemoryOptions.DataDir.
var ErrDataDirInUse = errors.New("herald: broker: data dir in use by another broker")

var errLocked = errors.New("locked")

type savedFile struct {
	Version int           `json:"version"`
	SavedAt int64         `json:"saved_at"`
	Streams []savedStream `json:"streams"`
}

// savedStream is one channel. History holds the newest len(History)
// offsets, oldest first.
type savedStream struct {
	Channel string       `json:"channel"`
	Epoch   string       `json:"epoch"`
	Offset  uint64       `json:"offset"`
	Active  int64        `json:"active"`
	History []savedEntry `json:"history,omitempty"`
	Keys    []savedKey   `json:"keys,omitempty"`
}

type savedEntry struct {
	At     int64  `json:"at"`
	Data   []byte `json:"data"`
	Client string `json:"client,omitempty"`
	User   string `json:"user,omitempty"`
}

type savedKey struct {
	Key    string `json:"key"`
	Offset uint64 `json:"offset"`
	At     int64  `json:"at"`
}

// save writes every live stream to DataDir. Close calls it after the broker
// is marked closed, so no publish can follow a stream's snapshot.
func (m *Memory) save() error {
	f := savedFile{Version: streamsFileVersion, SavedAt: time.Now().UnixNano()}
	for _, s := range m.streams(nil) {
		s.mu.Lock()
		now := time.Now().UnixNano()
		s.trim(now)
		if !s.dead && !s.idle(now) {
			f.Streams = append(f.Streams, s.saved())
		}
		s.mu.Unlock()
	}
	err := writeFileAtomic(m.dataDir, streamsFile, func(w io.Writer) error {
		return json.NewEncoder(w).Encode(&f)
	})
	if err != nil {
		return fmt.Errorf("herald: broker: save streams: %w", err)
	}
	return nil
}

func (s *memStream) saved() savedStream {
	out := savedStream{Channel: s.channel, Epoch: s.epoch, Offset: s.offset, Active: s.active}
	out.History = make([]savedEntry, s.hist.n)
	for i := range out.History {
		e := s.hist.at(i)
		f := fromOf(e.from)
		out.History[i] = savedEntry{At: e.at, Data: e.data, Client: f.Client, User: f.User}
	}
	for k, rec := range s.keys {
		out.Keys = append(out.Keys, savedKey{Key: k, Offset: rec.offset, At: rec.at})
	}
	return out
}

// openDataDir creates DataDir if needed, locks it for this broker, and
// restores the streams saved there.
func (m *Memory) openDataDir() error {
	if err := os.MkdirAll(m.dataDir, 0o755); err != nil {
		return fmt.Errorf("herald: broker: data dir unusable: %w", err)
	}
	path := filepath.Join(m.dataDir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("herald: broker: data dir unusable: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return fmt.Errorf("%w: %s (lock file %s)", ErrDataDirInUse, m.dataDir, path)
		}
		return fmt.Errorf("herald: broker: cannot lock data dir %s: %w", m.dataDir, err)
	}
	m.dirLock = f
	return m.openLog(m.restore())
}

// unlockDataDir releases the data dir for another broker.
func (m *Memory) unlockDataDir() {
	if m.dirLock != nil {
		m.dirLock.Close()
	}
}

// restore loads the streams a previous Close saved. The file is renamed to
// streams.json.loading before it is read, and deleted once it was read:
// the streams continue from here, so the file is stale from then on, and a
// crash before the next Close must restart with new epochs rather than
// replay it. A crash while loading (say, out of memory) leaves the
// .loading file, which the next start sets aside instead of loading it
// again. A file that cannot be used is renamed aside and logged. A file
// that was found makes the write-ahead log stale (Close saved the file after
// the last publish and deleted the log, which can only be left over): the
// log is deleted before the file, and restore reports true.
func (m *Memory) restore() bool {
	m.removeTemps()
	path := filepath.Join(m.dataDir, streamsFile)
	loading := path + ".loading"
	found := false
	if _, err := os.Lstat(loading); err == nil {
		m.setAside(loading, errors.New("an earlier start stopped while loading it"))
		found = true
	}
	if err := os.Rename(path, loading); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			m.probe()
		} else {
			m.log.Error("herald: broker cannot move the streams file to load it; channels start with new epochs", "file", path, "err", err)
			found = true
		}
		if found {
			m.dropStaleLog()
		}
		return found
	}
	if err := syncDir(m.dataDir); err != nil {
		m.log.Warn("herald: broker cannot sync data dir before loading the streams file", "dir", m.dataDir, "err", err)
	}
	raw, err := os.ReadFile(loading)
	var f savedFile
	if err == nil {
		err = f.decode(raw)
	}
	if err != nil {
		m.setAside(loading, err)
		m.dropStaleLog()
		return true
	}
	m.dropStaleLog()
	if err := os.Remove(loading); err != nil {
		m.log.Error("herald: broker cannot delete the loaded streams file; channels start with new epochs", "file", loading, "err", err)
		return true
	}
	if err := syncDir(m.dataDir); err != nil {
		m.log.Warn("herald: broker cannot sync data dir after deleting the streams file", "dir", m.dataDir, "err", err)
	}
	n := m.install(&f, time.Now().UnixNano())
	m.log.Info("herald: broker restored streams", "file", path, "channels", n)
	return true
}

// dropStaleLog deletes a write-ahead log left beside a streams file; it is
// not replayed either way.
func (m *Memory) dropStaleLog() {
	if err := m.removeLog(); err != nil {
		m.log.Warn("herald: broker cannot delete the write-ahead log left beside the streams file", "err", err)
	}
}

func (f *savedFile) decode(raw []byte) error {
	if err := json.Unmarshal(raw, f); err != nil {
		return err
	}
	if f.Version != streamsFileVersion {
		return fmt.Errorf("unknown version %d", f.Version)
	}
	seen := make(map[string]bool, len(f.Streams))
	for i := range f.Streams {
		s := &f.Streams[i]
		switch {
		case s.Channel == "" || s.Epoch == "":
			return errors.New("stream without channel or epoch")
		case seen[s.Channel]:
			return fmt.Errorf("channel %q saved twice", s.Channel)
		case uint64(len(s.History)) > s.Offset:
			return fmt.Errorf("channel %q: history longer than its offset", s.Channel)
		}
		seen[s.Channel] = true
		for _, k := range s.Keys {
			if k.Key == "" || k.Offset == 0 || k.Offset > s.Offset {
				return fmt.Errorf("channel %q: bad idempotency key", s.Channel)
			}
		}
	}
	return nil
}

// install adds the saved streams that are still live under the current
// history bounds, and returns how many.
func (m *Memory) install(f *savedFile, now int64) int {
	n := 0
	for i := range f.Streams {
		sv := &f.Streams[i]
		if !m.valid(sv) {
			continue
		}
		s := newStream(sv.Channel, sv.Epoch, m.history.For(sv.Channel), sv.Active, &m.held)
		if s.idle(now) {
			continue
		}
		if m.maxChannels > 0 && len(m.channels) >= m.maxChannels {
			m.log.Warn("herald: broker restored as many channels as it may hold; the others start with new epochs",
				"max_channels", m.maxChannels, "dropped", len(f.Streams)-i)
			break
		}
		s.offset = sv.Offset
		for _, e := range sv.History[len(sv.History)-min(len(sv.History), s.size):] {
			s.pushEntry(entry{data: e.Data, at: e.At, from: fromPtr(From{Client: e.Client, User: e.User})})
		}
		slices.SortFunc(sv.Keys, func(a, b savedKey) int { return cmp.Compare(a.At, b.At) })
		for _, k := range sv.Keys {
			rec := keyRec{offset: k.Offset, at: k.At}
			if s.keys == nil {
				s.keys = make(map[string]keyRec)
			}
			s.keys[k.Key] = rec
			s.keyq = append(s.keyq, keyEntry{key: k.Key, keyRec: rec})
			s.charge(keyBytes(k.Key))
		}
		s.trim(now)
		m.channels[s.channel] = s
		n++
	}
	return n
}

// valid reports whether a saved stream may be restored, logging why not. A
// publication whose data is not JSON is dropped with every older one, so
// that the history left has no gap.
func (m *Memory) valid(sv *savedStream) bool {
	if err := protocol.ValidateChannel(sv.Channel); err != nil {
		m.log.Warn("herald: broker skips a saved channel with an invalid name", "channel", sv.Channel, "err", err)
		return false
	}
	if !validEpoch(sv.Epoch) {
		m.log.Warn("herald: broker skips a saved channel with an invalid epoch", "channel", sv.Channel, "epoch", sv.Epoch)
		return false
	}
	for i := len(sv.History) - 1; i >= 0; i-- {
		if !json.Valid(sv.History[i].Data) {
			offset := sv.Offset - uint64(len(sv.History)-1-i)
			m.log.Warn("herald: broker drops saved history up to a publication that is not JSON", "channel", sv.Channel, "offset", offset)
			sv.History = sv.History[i+1:]
			break
		}
	}
	return true
}

// validEpoch reports whether e could be an epoch: 1 to 64 bytes of the
// base64url alphabet (NewEpoch makes 8).
func validEpoch(e string) bool {
	if e == "" || len(e) > 64 {
		return false
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// setAside renames a streams file that cannot be used to
// streams.json.corrupt-<Unix nanoseconds>, and deletes all but the newest
// keepCorrupt of those.
func (m *Memory) setAside(path string, cause error) {
	aside := filepath.Join(m.dataDir, fmt.Sprintf("%s.corrupt-%019d", streamsFile, time.Now().UnixNano()))
	if err := os.Rename(path, aside); err != nil {
		m.log.Error("herald: broker cannot load or set aside the streams file; channels start with new epochs",
			"file", path, "err", cause, "rename_err", err)
		return
	}
	m.log.Warn("herald: broker streams file unusable, set aside; channels start with new epochs",
		"file", aside, "err", cause)
	all, _ := filepath.Glob(filepath.Join(m.dataDir, streamsFile+".corrupt-*"))
	slices.Sort(all) // fixed-width times: oldest first
	for _, old := range all[:max(len(all)-keepCorrupt, 0)] {
		if err := os.Remove(old); err != nil {
			m.log.Warn("herald: broker cannot delete an old streams file set aside", "file", old, "err", err)
		}
	}
}

// probe warns at start when DataDir cannot be written, rather than at Close.
func (m *Memory) probe() {
	f, err := os.CreateTemp(m.dataDir, streamsFile+".tmp-*")
	if err != nil {
		m.log.Error("herald: broker data dir not writable; streams will not be saved", "dir", m.dataDir, "err", err)
		return
	}
	f.Close()
	os.Remove(f.Name())
}

// removeTemps deletes temporary files left by a save that did not finish.
func (m *Memory) removeTemps() {
	temps, _ := filepath.Glob(filepath.Join(m.dataDir, streamsFile+".tmp-*"))
	for _, t := range temps {
		os.Remove(t)
	}
}

// writeFileAtomic replaces dir/name with what write produces, so that the
// file is either the old one or the complete new one, even after a crash.
func writeFileAtomic(dir, name string, write func(io.Writer) error) (err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriter(tmp)
	if err = write(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
