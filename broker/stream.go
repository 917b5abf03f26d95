package broker

import "sync"

// memStream is one channel's stream in a memory broker. All fields but
// channel and opts are guarded by mu. Times are Unix nanoseconds.
type memStream struct {
	channel string
	size    int   // history bound by count
	ttl     int64 // history bound by age

	mu         sync.Mutex
	epoch      string
	offset     uint64
	active     int64 // last publish, creation or unsubscribe
	subscribed bool
	dead       bool // dropped from the broker: look the channel up again
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

func newStream(channel, epoch string, o HistoryOptions, now int64) *memStream {
	return &memStream{channel: channel, size: o.Size, ttl: int64(o.TTL), epoch: epoch, active: now}
}

// idle reports whether the stream may be dropped: not subscribed, and no
// publication or unsubscribe within the TTL. Its history and keys are all
// expired by then.
func (s *memStream) idle(now int64) bool {
	return !s.subscribed && now-s.active > s.ttl
}

// append adds a publication at the next offset.
func (s *memStream) append(data []byte, key string, now int64) {
	s.trim(now)
	s.offset++
	s.active = now
	s.hist.push(entry{data: data, at: now}, s.size)
	if key != "" {
		if s.keys == nil {
			s.keys = make(map[string]keyRec)
		}
		rec := keyRec{offset: s.offset, at: now}
		s.keys[key] = rec
		s.keyq = append(s.keyq, keyEntry{key: key, keyRec: rec})
	}
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
		s.hist.pop()
	}
	for s.keyqHead < len(s.keyq) && now-s.keyq[s.keyqHead].at > s.ttl {
		e := s.keyq[s.keyqHead]
		if s.keys[e.key] == e.keyRec {
			delete(s.keys, e.key)
		}
		s.keyq[s.keyqHead] = keyEntry{}
		s.keyqHead++
	}
	switch {
	case s.keyqHead == len(s.keyq):
		// Release the memory of a burst of keys once they have all expired.
		s.keys, s.keyq, s.keyqHead = nil, nil, 0
	case s.keyqHead >= 64 && s.keyqHead > len(s.keyq)/2:
		n := copy(s.keyq, s.keyq[s.keyqHead:])
		clear(s.keyq[n:])
		s.keyq, s.keyqHead = s.keyq[:n], 0
	}
}

// entry is one publication in history; its offset follows from its place.
type entry struct {
	data []byte
	at   int64
}

// ring holds a channel's newest publications, oldest first. Its buffer
// grows by doubling up to the history size, and is released when the ring
// empties, so quiet channels cost little.
type ring struct {
	buf  []entry
	head int // index of the oldest entry
	n    int
}

func (r *ring) at(i int) *entry { return &r.buf[(r.head+i)%len(r.buf)] }

// push appends e, overwriting the oldest entry when the ring holds limit.
func (r *ring) push(e entry, limit int) {
	if r.n >= limit {
		*r.at(0) = e
		r.head = (r.head + 1) % len(r.buf)
		return
	}
	if r.n == len(r.buf) {
		r.grow(min(max(2*len(r.buf), 4), limit))
	}
	r.n++
	*r.at(r.n - 1) = e
}

func (r *ring) grow(size int) {
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
	if r.n == 0 {
		r.buf, r.head = nil, 0
	}
}
