package broker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FsyncMode says when the memory broker's write-ahead log (see
// MemoryOptions.DataDir) is forced to disk. Every publication is written to
// the log before Publish returns, whatever the mode; the mode decides what
// survives a power cut or an operating-system crash, not a killed process.
type FsyncMode int

const (
	// FsyncInterval (the zero value) forces the log to disk every
	// MemoryOptions.FsyncInterval. After a power cut the channels restart
	// with new epochs.
	FsyncInterval FsyncMode = iota
	// FsyncAlways returns from Publish only once the publication is on
	// disk; concurrent publishes share one fsync. Nothing acknowledged is
	// lost, even to a power cut.
	FsyncAlways
	// FsyncOff never forces the log to disk (the operating system writes it
	// when it likes). After a power cut the channels restart with new epochs.
	FsyncOff
)

// DefaultFsyncInterval is MemoryOptions.FsyncInterval's default.
const DefaultFsyncInterval = 100 * time.Millisecond

func (f FsyncMode) String() string {
	switch f {
	case FsyncInterval:
		return "interval"
	case FsyncAlways:
		return "always"
	case FsyncOff:
		return "off"
	}
	return "FsyncMode(" + strconv.Itoa(int(f)) + ")"
}

// ParseFsyncMode returns the mode named always, interval or off.
func ParseFsyncMode(s string) (FsyncMode, error) {
	for _, f := range []FsyncMode{FsyncInterval, FsyncAlways, FsyncOff} {
		if s == f.String() {
			return f, nil
		}
	}
	return 0, fmt.Errorf("herald: broker: fsync mode %q: want always, interval or off", s)
}

// The log lives in DataDir/wal as segments named by a sequence number
// (%020d.log). A record is framed as a 4-byte little-endian length of its
// payload, the payload's CRC-32C (Castagnoli), and the payload. A segment
// starts with a meta record.
const (
	walDirName     = "wal"
	segmentSuffix  = ".log"
	frameHeader    = 8
	maxRecordBytes = 256 << 20 // longer lengths are damage
	walFormat      = 1
	recMeta        = 'M' // format, boot id and fsync mode of the run
	recPublish     = 'P' // a publication, with its key if any
	recKey         = 'K' // an idempotency key whose publication left history
	recPosition    = 'S' // a stream's position before its history
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segmentBytes is the size at which a segment is sealed and the next begun;
// a variable for tests.
var segmentBytes int64 = 16 << 20

// errTorn is what the reader returns for a record cut short or damaged.
var errTorn = errors.New("torn or corrupt record")

// walRecord is one record of the log. Publish records carry all fields but
// boot and mode; meta records only format, boot and mode.
type walRecord struct {
	kind    byte
	channel string
	epoch   string
	offset  uint64
	at      int64
	key     string
	data    []byte
	from    From // of a publish record; absent from records of older logs
	boot    string
	mode    FsyncMode
}

// appendFrame appends r, framed, to b.
func (r *walRecord) appendFrame(b []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, frameHeader)...)
	b = append(b, r.kind)
	switch r.kind {
	case recMeta:
		b = binary.AppendUvarint(b, walFormat)
		b = appendString(b, r.boot)
		b = binary.AppendUvarint(b, uint64(r.mode))
	default:
		b = appendString(b, r.channel)
		b = appendString(b, r.epoch)
		b = binary.AppendUvarint(b, r.offset)
		b = binary.AppendVarint(b, r.at)
		b = appendString(b, r.key)
		b = binary.AppendUvarint(b, uint64(len(r.data)))
		b = append(b, r.data...)
		if r.kind == recPublish && r.from != (From{}) {
			b = appendString(b, r.from.Client)
			b = appendString(b, r.from.User)
		}
	}
	payload := b[start+frameHeader:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(payload, castagnoli))
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeRecord parses a payload whose checksum matched. data shares p.
func decodeRecord(p []byte) (walRecord, error) {
	d := decoder{p: p}
	r := walRecord{kind: d.byte()}
	switch r.kind {
	case recMeta:
		if f := d.uvarint(); d.err == nil && f != walFormat {
			return r, fmt.Errorf("unknown log format %d", f)
		}
		r.boot = d.string()
		r.mode = FsyncMode(d.uvarint())
	case recPublish, recKey, recPosition:
		r.channel = d.string()
		r.epoch = d.string()
		r.offset = d.uvarint()
		r.at = d.varint()
		r.key = d.string()
		r.data = d.bytes()
		if r.kind == recPublish && len(d.p) > 0 {
			r.from.Client = d.string()
			r.from.User = d.string()
		}
		if d.err == nil && (r.channel == "" || !validEpoch(r.epoch)) {
			d.err = errors.New("record without channel or epoch")
		}
		if d.err == nil && r.kind != recPosition && r.offset == 0 {
			d.err = errors.New("record at offset 0")
		}
	default:
		return r, fmt.Errorf("unknown record kind %q", r.kind)
	}
	if d.err == nil && len(d.p) != 0 {
		d.err = errors.New("trailing bytes in record")
	}
	return r, d.err
}

type decoder struct {
	p   []byte
	err error
}

func (d *decoder) fail() { d.err, d.p = errors.New("short record"), nil }

func (d *decoder) byte() byte {
	if len(d.p) == 0 {
		d.fail()
		return 0
	}
	c := d.p[0]
	d.p = d.p[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.p)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.p)) {
		d.fail()
		return nil
	}
	b := d.p[:n:n]
	d.p = d.p[n:]
	return b
}

func (d *decoder) string() string { return string(d.bytes()) }

// readFrame reads one record's payload from r. It returns io.EOF at a clean
// end and errTorn for a frame cut short, too long or failing its checksum.
func readFrame(r *bufio.Reader) ([]byte, error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, errTorn
	}
	n := binary.LittleEndian.Uint32(h[:])
	if n == 0 || n > maxRecordBytes {
		return nil, errTorn
	}
	var p []byte
	if n <= 64<<10 {
		p = make([]byte, n)
		if _, err := io.ReadFull(r, p); err != nil {
			return nil, errTorn
		}
	} else {
		// Grown as bytes arrive, not allocated from a length that may be
		// damage.
		var b bytes.Buffer
		if _, err := io.CopyN(&b, r, int64(n)); err != nil {
			return nil, errTorn
		}
		p = b.Bytes()
	}
	if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(h[4:]) {
		return nil, errTorn
	}
	return p, nil
}

// readSegment calls fn for every good record of the segment at path, in
// order, and returns how many bytes they take and, when it stopped before
// the end of the file, why (errTorn or a decoding error wrapped in it).
func readSegment(path string, fn func(walRecord)) (good int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		p, err := readFrame(r)
		if err == io.EOF {
			return good, nil
		}
		if err != nil {
			return good, err
		}
		rec, err := decodeRecord(p)
		if err != nil {
			return good, fmt.Errorf("%w: %v", errTorn, err)
		}
		fn(rec)
		good += int64(frameHeader + len(p))
	}
}

// segmentPath returns the path of segment seq in dir.
func segmentPath(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", seq, segmentSuffix))
}

// listSegments returns the sequence numbers of dir's segments, ascending.
func listSegments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), segmentSuffix)
		if !ok || len(name) != 20 {
			continue
		}
		if n, err := strconv.ParseUint(name, 10, 64); err == nil {
			seqs = append(seqs, n)
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}

// wal appends records to the newest segment of the log. append and syncTo
// are safe for concurrent use. A write or fsync that fails makes every later
// call fail: the log no longer says what was acknowledged.
type wal struct {
	dir  string
	mode FsyncMode
	boot string

	mu      sync.Mutex
	f       *os.File
	segs    []*segment // oldest first; the last is the one written
	written uint64     // bytes written since open, over all segments
	buf     []byte
	err     error

	syncMu sync.Mutex
	synced uint64       // written when the last fsync started
	syncs  atomic.Int64 // fsyncs done, for tests

	stop chan struct{}
	done chan struct{}
}

// segment is one file of the log and, for each channel it has records of,
// the epoch and highest offset of its last record: what decides when all
// of the segment has left history.
type segment struct {
	seq   uint64
	size  int64
	chans map[string]segRef
}

type segRef struct {
	epoch string
	max   uint64
}

// newWAL starts a log in dir whose first segment, seq, holds the records
// each emits (the broker's state), written to a temporary file, forced to
// disk and renamed, so that a crash leaves either the complete segment or
// none.
func newWAL(dir string, seq uint64, mode FsyncMode, every time.Duration, boot string, each func(emit func(*walRecord))) (*wal, error) {
	w := &wal{dir: dir, mode: mode, boot: boot}
	seg := &segment{seq: seq, chans: make(map[string]segRef)}
	path := segmentPath(dir, seq)
	if err := writeFileAtomic(dir, filepath.Base(path), func(wr io.Writer) error {
		var buf []byte
		var err error
		write := func(r *walRecord) {
			if err == nil {
				buf = r.appendFrame(buf[:0])
				_, err = wr.Write(buf)
				seg.size += int64(len(buf))
				seg.note(r)
			}
		}
		write(w.meta())
		each(write)
		return err
	}); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	w.f, w.segs = f, []*segment{seg}
	if mode == FsyncInterval {
		w.stop, w.done = make(chan struct{}), make(chan struct{})
		go w.syncLoop(every)
	}
	return w, nil
}

func (w *wal) meta() *walRecord { return &walRecord{kind: recMeta, boot: w.boot, mode: w.mode} }

func (s *segment) note(r *walRecord) {
	if r.kind != recMeta {
		s.chans[r.channel] = segRef{epoch: r.epoch, max: r.offset}
	}
}

// append writes r to the log and returns the log's length after it, to pass
// to syncTo. The record is in the operating system's hands when it returns.
func (w *wal) append(r *walRecord) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	w.buf = r.appendFrame(w.buf[:0])
	seg := w.segs[len(w.segs)-1]
	if seg.size+int64(len(w.buf)) > segmentBytes {
		if w.err = w.rotate(); w.err != nil {
			return 0, w.err
		}
		seg = w.segs[len(w.segs)-1]
		w.buf = r.appendFrame(w.buf[:0])
	}
	n, err := w.f.Write(w.buf)
	seg.size += int64(n)
	w.written += uint64(n)
	if err != nil {
		w.err = fmt.Errorf("write-ahead log: %w", err)
		return 0, w.err
	}
	seg.note(r)
	return w.written, nil
}

// rotate seals the segment being written (forcing it to disk unless the
// mode is off) and starts the next. Called with mu held.
func (w *wal) rotate() error {
	if w.mode != FsyncOff {
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("write-ahead log: fsync: %w", err)
		}
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("write-ahead log: %w", err)
	}
	seq := w.segs[len(w.segs)-1].seq + 1
	f, err := os.OpenFile(segmentPath(w.dir, seq), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("write-ahead log: %w", err)
	}
	if w.mode != FsyncOff {
		if err := syncDir(w.dir); err != nil {
			f.Close()
			return fmt.Errorf("write-ahead log: %w", err)
		}
	}
	w.f = f
	meta := w.meta().appendFrame(nil)
	n, err := f.Write(meta)
	w.written += uint64(n)
	w.segs = append(w.segs, &segment{seq: seq, size: int64(n), chans: make(map[string]segRef)})
	if err != nil {
		return fmt.Errorf("write-ahead log: %w", err)
	}
	return nil
}

// syncTo returns once the log is on disk up to end (a value append
// returned). Callers that arrive while an fsync runs wait for it and most
// find their records covered by it or by the next: one fsync serves all
// the publishes written before it started.
func (w *wal) syncTo(end uint64) error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	if w.synced >= end {
		return nil
	}
	w.mu.Lock()
	f, upto, err := w.f, w.written, w.err
	w.mu.Unlock()
	if err != nil {
		return err
	}
	// A segment sealed since then was forced to disk by rotate.
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		err = fmt.Errorf("write-ahead log: fsync: %w", err)
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
		return err
	}
	w.synced = upto
	w.syncs.Add(1)
	return nil
}

func (w *wal) syncLoop(every time.Duration) {
	defer close(w.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.mu.Lock()
			end := w.written
			w.mu.Unlock()
			w.syncTo(end)
		}
	}
}

// sealed returns the segments no longer written, oldest first. Their chans
// no longer change.
func (w *wal) sealed() []*segment {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.segs[:len(w.segs)-1])
}

// dropOldest deletes the n oldest segments, which must be sealed.
func (w *wal) dropOldest(n int) error {
	w.mu.Lock()
	gone := slices.Clone(w.segs[:n])
	w.segs = slices.Delete(w.segs, 0, n)
	w.mu.Unlock()
	var errs []error
	for _, s := range gone {
		if err := os.Remove(segmentPath(w.dir, s.seq)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// bytes returns the size of the log's segments on disk.
func (w *wal) bytes() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	for _, s := range w.segs {
		n += s.size
	}
	return n
}

// close stops the log; with sync, it first forces it to disk. Later
// appends fail with ErrClosed.
func (w *wal) close(sync bool) error {
	if w.stop != nil {
		close(w.stop)
		<-w.done
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	if sync && w.err == nil {
		err = w.f.Sync()
	}
	if w.err == nil {
		w.err = ErrClosed
	}
	return errors.Join(err, w.f.Close())
}
