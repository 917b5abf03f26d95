package herald

import (
	"bytes"
	"testing"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/protocol"
)

// TestFrameHeaders reads the frames buildFrame and frameInPlace make back
// with gobwas/ws, at the boundaries of the three length encodings.
func TestFrameHeaders(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 0xffff, 0x10000, 0x10001} {
		payload := bytes.Repeat([]byte{'a'}, n)
		inPlace := frameInPlace(ws.OpText, false, append(make([]byte, maxHeaderSize), payload...))
		for name, frame := range map[string][]byte{"buildFrame": buildFrame(ws.OpText, payload), "frameInPlace": inPlace} {
			r := bytes.NewReader(frame)
			h, err := ws.ReadHeader(r)
			if err != nil || !h.Fin || h.OpCode != ws.OpText || h.Masked || h.Length != int64(n) || r.Len() != n {
				t.Errorf("%s(%d bytes): header %+v, err %v, %d bytes after it", name, n, h, err, r.Len())
			}
		}
	}
}

func TestMessageFrameAllocatesOnce(t *testing.T) {
	p := broker.Publication{Channel: "chat:lobby", Epoch: "e", Offset: 1<<64 - 1, Data: []byte(`{"text":"hi"}`),
		Time: 1767225600123, From: broker.From{Client: "s_8KQ2", User: "al\"ice\x01é"}}
	frame := messageFrame(p)
	want := buildFrame(ws.OpText, protocol.AppendMessage(nil, p.Channel, p.Offset, p.Time, &p.From, p.Data))
	if !bytes.Equal(frame, want) {
		t.Fatalf("messageFrame = %q, want %q", frame, want)
	}
	if n := testing.AllocsPerRun(100, func() { messageFrame(p) }); n != 1 {
		t.Errorf("messageFrame allocates %v times, want 1", n)
	}
}
