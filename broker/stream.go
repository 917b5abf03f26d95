package broker

import (
	"sync"
	"sync/atomic"
)

// What a stream counts towards MemoryOptions.MaxHistoryBytes, beyond the
// length of each publication's data and of each idempotency key: every slot
// of its history ring (counted by the ring's capacity, not its length), a
// share of the allocation that holds each publication's data, and for each
// key a map entry and a queue entry of about 32 bytes each with the map's
// slack. A publication from a connection adds its From: fromOverhead and
// the length of its ids.
const (
	slotBytes     = 40 // unsafe.Sizeof(entry{})
	entryOverhead = 32
	keyOverhead   = 128
	fromOverhead  = 32
)

// memStream is one channel's stream in a memory broker. All fields but
// channel, opts and held are guarded by mu. Times are Unix nanoseconds.
type memStream struct {
	channel string
	size    int           // history bound by count
	ttl     int64         // history bound by age
	held    *atomic.Int64 // the broker's total of bytes, which bytes is part of

	mu         sync.Mutex
	epoch      string
	offset     uint64
	active     int64 // last publish, creation or unsubscribe
	subscribed bool
	dead       bool  // dropped from the broker: look the channel up again
	bytes      int64 // counted bytes of hist and keyq
	hist       ring
	keys       map[string]keyRec // idempotency key -> first publication
	keyq       []keyEntry        // keys in order of use, for expiry
	keyqHead   int
}

type keyRec struct {
	offset uint64
	at     int64
}

type keyEntry struct {
	key string
	keyRec
}

func newStream(channel, epoch string, o HistoryOptions, now int64, held *atomic.Int64) *memStream {
	return &memStream{channel: channel, size: o.Size, ttl: int64(o.TTL), held: held, epoch: epoch, active: now}
}

// idle reports whether the stream may be dropped: not subscribed, and no
// publication or unsubscribe within the TTL. Its history and keys are all
// expired by then.
func (s *memStream) idle(now int64) bool {
	return !s.subscribed && now-s.active > s.ttl
}

// empty reports whether dropping the stream loses nothing but its position:
// nobody on this node is subscribed, and it holds no history and no key.
func (s *memStream) empty() bool {
	return !s.subscribed && s.bare()
}

// bare reports whether the stream holds no publication and no key.
func (s *memStream) bare() bool {
	return s.hist.n == 0 && s.keyqHead == len(s.keyq)
}

// kill marks the stream dropped and releases what it holds.
func (s *memStream) kill() {
	s.dead = true
	s.release()
}

// reset drops the history and keys and moves the stream to offset, in the
// same epoch: the publications before it can no longer be recovered.
func (s *memStream) reset(offset uint64) {
	s.release()
	s.offset = offset
}

func (s *memStream) release() {
	s.charge(-s.bytes)
	s.hist = ring{}
	s.keys, s.keyq, s.keyqHead = nil, nil, 0
}

// floor returns the lowest offset the stream still holds, in history or as
// an idempotency key's publication; offset+1 when it holds none.
func (s *memStream) floor() uint64 {
	low := s.offset + 1 - uint64(s.hist.n)
	if s.keyqHead < len(s.keyq) {
		low = min(low, s.keyq[s.keyqHead].offset)
	}
	return low
}

func (s *memStream) charge(n int64) {
	s.bytes += n
	s.held.Add(n)
}

func entryBytes(e entry) int64 {
	n := int64(len(e.data)) + entryOverhead
	if e.from != nil {
		n += int64(len(e.from.Client)+len(e.from.User)) + fromOverhead
	}
	return n
}
func keyBytes(k string) int64 { return int64(len(k)) + keyOverhead }

// append adds a publication at the next offset.
func (s *memStream) append(data []byte, key string, from *From, now int64) {
	s.trim(now)
	s.offset++
	s.active = now
	if s.hist.n >= s.size {
		s.popEntry()
	}
	s.pushEntry(entry{data: data, at: now, from: from})
	if key != "" {
		s.addKey(key, keyRec{offset: s.offset, at: now})
	}
}

// addKey records key as used by the publication at rec.
func (s *memStream) addKey(key string, rec keyRec) {
	if s.keys == nil {
		s.keys = make(map[string]keyRec)
	}
	s.keys[key] = rec
	s.keyq = append(s.keyq, keyEntry{key: key, keyRec: rec})
	s.charge(keyBytes(key))
}

func (s *memStream) pushEntry(e entry) {
	slots := len(s.hist.buf)
	s.hist.push(e, s.size)
	s.charge(entryBytes(e) + int64(len(s.hist.buf)-slots)*slotBytes)
}

func (s *memStream) popEntry() {
	slots := len(s.hist.buf)
	freed := entryBytes(*s.hist.at(0))
	s.hist.pop()
	s.charge(-freed - int64(slots-len(s.hist.buf))*slotBytes)
}

// popKey forgets the oldest key.
func (s *memStream) popKey() {
	e := s.keyq[s.keyqHead]
	if s.keys[e.key] == e.keyRec {
		delete(s.keys, e.key)
	}
	s.charge(-keyBytes(e.key))
	s.keyq[s.keyqHead] = keyEntry{}
	s.keyqHead++
}

// lookupKey returns the offset of the publication that first used key, if
// that was within the TTL.
func (s *memStream) lookupKey(key string, now int64) (uint64, bool) {
	rec, ok := s.keys[key]
	if !ok || now-rec.at > s.ttl {
		return 0, false
	}
	return rec.offset, true
}

// trim drops history entries and keys older than the TTL.
func (s *memStream) trim(now int64) {
	for s.hist.n > 0 && now-s.hist.at(0).at > s.ttl {
		s.popEntry()
	}
	for s.keyqHead < len(s.keyq) && now-s.keyq[s.keyqHead].at > s.ttl {
		s.popKey()
	}
	s.compactKeys()
}

// evictOldest drops the oldest publication, with the keys of it and of
// older publications, or the oldest key when no publication is left.
func (s *memStream) evictOldest() {
	if s.hist.n == 0 {
		s.popKey()
		s.compactKeys()
		return
	}
	oldest := s.offset - uint64(s.hist.n) + 1
	s.popEntry()
	for s.keyqHead < len(s.keyq) && s.keyq[s.keyqHead].offset <= oldest {
		s.popKey()
	}
	s.compactKeys()
}

// compactKeys releases the memory of keys that left the queue.
func (s *memStream) compactKeys() {
	switch {
	case s.keyqHead == len(s.keyq):
		// Release the memory of a burst of keys once they have all gone.
		s.keys, s.keyq, s.keyqHead = nil, nil, 0
	case s.keyqHead >= 64 && s.keyqHead > len(s.keyq)/2:
		n := copy(s.keyq, s.keyq[s.keyqHead:])
		clear(s.keyq[n:])
		s.keyq, s.keyqHead = s.keyq[:n], 0
	}
}

// entry is one publication in history; its offset follows from its place.
// at is also the publication's Time; from is nil when the application
// published it.
type entry struct {
	data []byte
	at   int64
	from *From
}

// ring holds a channel's newest publications, oldest first. Its buffer
// grows by doubling as needed, halves when it is a quarter full, and is
// released when the ring empties, so quiet channels cost little.
type ring struct {
	buf  []entry
	head int // index of the oldest entry
	n    int
}

func (r *ring) at(i int) *entry { return &r.buf[(r.head+i)%len(r.buf)] }

// push appends e; the ring must hold fewer than limit entries.
func (r *ring) push(e entry, limit int) {
	if r.n == len(r.buf) {
		r.resize(min(max(2*len(r.buf), 4), limit))
	}
	r.n++
	*r.at(r.n - 1) = e
}

func (r *ring) resize(size int) {
	buf := make([]entry, size)
	for i := range r.n {
		buf[i] = *r.at(i)
	}
	r.buf, r.head = buf, 0
}

// pop drops the oldest entry.
func (r *ring) pop() {
	*r.at(0) = entry{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	switch {
	case r.n == 0:
		r.buf, r.head = nil, 0
	case len(r.buf) > 16 && r.n <= len(r.buf)/4:
		r.resize(len(r.buf) / 2)
	}
}
