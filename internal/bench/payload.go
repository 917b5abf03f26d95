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

// appendChatPayload is appendPayload with the padding a chat message as
// chat services send it (shaped like a Slack message event: the text, and
// again as rich-text blocks, the sender's profile, reactions, a thread),
// different in each publication, so that it compresses as real chat JSON
// does rather than as a run of one letter.
func appendChatPayload(b []byte, seq uint64, sent time.Time, size int) []byte {
	rng := rand.New(rand.NewPCG(seq, 0x6865726c64))
	start := len(b)
	b = append(b, `{"s":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, sent.UnixNano(), 10)
	var text []byte
	for n := 20 + rng.IntN(50); len(text) < n; {
		text = append(append(text, chatWords[rng.IntN(len(chatWords))]...), ' ')
	}
	text = text[:len(text)-1]
	name, uid, hash := chatNames[rng.IntN(len(chatNames))], rng.Uint32(), rng.Uint64()
	ts := fmt.Sprintf("%d.%06d", sent.Unix(), rng.IntN(1e6))
	b = fmt.Appendf(b, `,"p":{"type":"message","client_msg_id":"%08x-%04x-4%03x-a%03x-%012x","text":"%s","user":"U%08X","ts":"%s","team":"T024BE7LD","channel":"C2147483705",`+
		`"blocks":[{"type":"rich_text","block_id":"%05x","elements":[{"type":"rich_text_section","elements":[{"type":"text","text":"%s"}]}]}],`+
		`"user_profile":{"avatar_hash":"%012x","image_72":"https://avatars.slack-edge.com/2026-01-01/%d_%012x_72.png","image_192":"https://avatars.slack-edge.com/2026-01-01/%d_%012x_192.png","first_name":"%s","real_name":"%s","display_name":"%s","team":"T024BE7LD","name":"%s","is_restricted":false,"is_ultra_restricted":false},`+
		`"thread_ts":"%s","reply_count":%d,"reactions":[`,
		rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<12), rng.IntN(1<<12), rng.Uint64()&(1<<48-1), text, uid, ts, rng.IntN(1<<20), text,
		hash&(1<<48-1), uid, hash&(1<<48-1), uid, hash&(1<<48-1), name, name, name, name, ts, rng.IntN(12))
	for i := 0; len(b)-start < size-120; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"name":"%s","users":["U%08X","U%08X"],"count":2}`, chatEmoji[rng.IntN(len(chatEmoji))], rng.Uint32(), rng.Uint32())
	}
	b = append(b, `],"edited":false,"topic":"`...)
	for len(b)-start < size-3 {
		w := chatWords[rng.IntN(len(chatWords))]
		w = w[:min(len(w), size-3-(len(b)-start))]
		b = append(b, w...)
		if len(b)-start < size-3 {
			b = append(b, ' ')
		}
	}
	return append(b, `"}}`...)
}

var chatEmoji = []string{"thumbsup", "tada", "eyes", "heart", "rocket", "white_check_mark", "joy", "pray"}

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
