package bench

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// The data of every benchmark publication is a JSON object carrying a
// sequence number and the send time, padded to the requested size:
//
//	{"s":42,"t":1767225600000000000,"p":"xxxx"}
//
// The readers find these fields without encoding/json and without
// allocating.

// appendPayload appends the data of publication seq, sent at sent, padded
// to size bytes when it is shorter.
func appendPayload(b []byte, seq uint64, sent time.Time, size int) []byte {
	start := len(b)
	b = append(b, `{"s":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, sent.UnixNano(), 10)
	b = append(b, `,"p":"`...)
	for len(b)-start < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// appendChatPayload is appendPayload with the padding a chat message
// (sender, room, text of common words, mentions, reactions), different in
// each publication, so that it compresses as real chat JSON does rather
// than as a run of one letter.
func appendChatPayload(b []byte, seq uint64, sent time.Time, size int) []byte {
	rng := rand.New(rand.NewPCG(seq, 0x6865726c64))
	start := len(b)
	b = append(b, `{"s":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, sent.UnixNano(), 10)
	user := chatNames[rng.IntN(len(chatNames))]
	b = fmt.Appendf(b, `,"p":{"id":"msg_%016x","room":"general","user":{"id":"u_%08x","name":"%s","avatar":"https://cdn.example.com/avatars/%08x.png"},"sent_at":"%s","mentions":["%s"],"reactions":[{"emoji":"+1","count":%d}],"edited":false,"text":"`,
		rng.Uint64(), rng.Uint32(), user, rng.Uint32(), sent.UTC().Format(time.RFC3339Nano), chatNames[rng.IntN(len(chatNames))], rng.IntN(9))
	for len(b)-start < size-3 {
		w := chatWords[rng.IntN(len(chatWords))]
		if len(b)-start+len(w)+1 > size-3 {
			w = w[:size-3-(len(b)-start)-1]
		}
		b = append(append(b, w...), ' ')
	}
	return append(b, `"}}`...)
}

var chatNames = []string{"ada", "grace", "linus", "margaret", "ken", "barbara", "dennis", "frances", "edsger", "radia"}

var chatWords = strings.Fields(`the a to and of I you it is that in we for this on have with be
are not just was so but can if do at what about my me will all get like there think
one know how no yes up out they your now time when some would should could meeting deploy
build release tomorrow today morning lunch coffee review merge branch fix bug test server
client channel message latency looks good thanks sure ok maybe later please check again`)

// appendPublish appends a publish request for data.
func appendPublish(b []byte, id uint64, channel string, data []byte) []byte {
	b = append(b, `{"type":"publish","id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"channel":"`...)
	b = append(b, channel...)
	b = append(b, `","data":`...)
	b = append(b, data...)
	return append(b, '}')
}

var (
	keyMessagePrefix = []byte(`{"type":"message",`)
	keyPublished     = []byte(`{"type":"published",`)
	keyError         = []byte(`{"type":"error",`)
	keyOffset        = []byte(`"offset":`)
	keyID            = []byte(`"id":`)
	keySeq           = []byte(`"data":{"s":`)
	keyTime          = []byte(`,"t":`)
)

// sample is what a reader takes from one message frame.
type sample struct {
	offset, seq uint64
	sent        int64 // UnixNano
}

// messageParser reads the message frames of one channel. It expects the
// layout of protocol.AppendMessage and reads the fields in place; a frame
// laid out otherwise is searched for them.
type messageParser struct{ prefix []byte }

func newMessageParser(channel string) messageParser {
	return messageParser{[]byte(`{"type":"message","channel":"` + channel + `","offset":`)}
}

var (
	sepSeq  = []byte(`,"data":{"s":`)
	sepTime = []byte(`,"t":`)
)

func (mp messageParser) parse(p []byte) (sample, bool) {
	if rest, ok := bytes.CutPrefix(p, mp.prefix); ok {
		var s sample
		var sent uint64
		if rest, ok = number(rest, &s.offset, sepSeq); ok {
			if rest, ok = number(rest, &s.seq, sepTime); ok {
				if _, ok = number(rest, &sent, nil); ok {
					s.sent = int64(sent)
					return s, true
				}
			}
		}
	}
	return parseMessage(p)
}

// number parses the decimal number at the start of p into v, then expects
// sep, and returns what follows.
func number(p []byte, v *uint64, sep []byte) ([]byte, bool) {
	n := 0
	*v = 0
	for n < len(p) && p[n] >= '0' && p[n] <= '9' {
		*v = *v*10 + uint64(p[n]-'0')
		n++
	}
	if n == 0 {
		return nil, false
	}
	return bytes.CutPrefix(p[n:], sep)
}

// parseMessage finds the fields of a benchmark message frame wherever they
// are.
func parseMessage(p []byte) (sample, bool) {
	if !bytes.HasPrefix(p, keyMessagePrefix) {
		return sample{}, false
	}
	var s sample
	var ok1, ok2, ok3 bool
	s.offset, ok1 = uintAfter(p, keyOffset)
	s.seq, ok2 = uintAfter(p, keySeq)
	sent, ok3 := uintAfter(p, keyTime)
	s.sent = int64(sent)
	return s, ok1 && ok2 && ok3
}

// parseSeq finds the sequence number in a benchmark payload.
func parseSeq(data []byte) (uint64, bool) { return uintAfter(data, []byte(`{"s":`)) }

// reply is a publisher's view of a reply frame.
type reply struct {
	id uint64
	ok bool // published; else an error
}

// parseReply reads a published or error reply; ok is false for other
// frames.
func parseReply(p []byte) (r reply, ok bool) {
	switch {
	case bytes.HasPrefix(p, keyPublished):
		r.ok = true
	case bytes.HasPrefix(p, keyError):
	default:
		return r, false
	}
	r.id, ok = uintAfter(p, keyID)
	return r, ok
}

// uintAfter parses the decimal number that follows the first key in p.
func uintAfter(p, key []byte) (uint64, bool) {
	i := bytes.Index(p, key)
	if i < 0 {
		return 0, false
	}
	var v uint64
	n := 0
	for _, c := range p[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + uint64(c-'0')
		n++
	}
	return v, n > 0
}
