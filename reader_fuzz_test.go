package herald

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// panicCatcher is a slog handler that remembers errors logged by the
// server, so the fuzzer sees panics the session recovered from.
type panicCatcher struct {
	mu     sync.Mutex
	errors []string
}

func (h *panicCatcher) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h *panicCatcher) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	h.errors = append(h.errors, b.String())
	return nil
}
func (h *panicCatcher) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *panicCatcher) WithGroup(string) slog.Handler      { return h }

func (h *panicCatcher) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.errors
	h.errors = nil
	return e
}

func masked(op ws.OpCode, fin bool, payload string) []byte {
	return ws.MustCompileFrame(ws.MaskFrame(ws.NewFrame(op, fin, []byte(payload))))
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// FuzzFrameReader feeds arbitrary client byte streams to a session: it must
// never panic and never hang once the client goes away, whatever the frames
// claim (lying lengths, fragments, control frames out of place, bad UTF-8).
func FuzzFrameReader(f *testing.F) {
	f.Add(masked(ws.OpText, true, `{"type":"ping","id":1}`))
	f.Add(cat(masked(ws.OpText, true, `{"type":"subscribe","id":1,"channel":"a"}`),
		masked(ws.OpText, true, `{"type":"publish","id":2,"channel":"a","data":[1,{"x":null}],"key":"k"}`),
		masked(ws.OpText, true, `{"type":"subscribe","id":3,"channel":"a","since":{"epoch":"x","offset":1}}`),
		masked(ws.OpText, true, `{"type":"unsubscribe","id":4,"channel":"a"}`)))
	f.Add(cat(masked(ws.OpText, false, `{"type":`), masked(ws.OpPing, true, "p"), masked(ws.OpContinuation, true, `"ping"}`)))
	f.Add(masked(ws.OpContinuation, true, "orphan"))
	f.Add(cat(masked(ws.OpText, false, "a"), masked(ws.OpText, true, "b")))
	f.Add(masked(ws.OpPing, false, "fragmented control"))
	f.Add(masked(ws.OpPing, true, strings.Repeat("x", 126)))
	f.Add(masked(ws.OpClose, true, "\x03"))
	f.Add(masked(ws.OpClose, true, "\x03\xe8bye"))
	f.Add(masked(ws.OpClose, true, "\x03\xe8\xff"))
	f.Add(masked(ws.OpText, true, "\xff\xfe"))
	f.Add(masked(ws.OpBinary, true, "\x00\x01"))
	f.Add(masked(0x3, true, "reserved"))
	f.Add(ws.MustCompileFrame(ws.NewTextFrame([]byte(`{"type":"ping"}`))))                // unmasked
	f.Add([]byte{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}) // 2^63 length
	f.Add([]byte{0x81, 0xfe, 0x00, 0x10, 1, 2, 3, 4, 'a'})                                // shorter than it says
	f.Add([]byte{0xc1, 0x80, 1, 2, 3, 4})                                                 // RSV1
	f.Add(masked(ws.OpText, true, `{"type":"hello","id":1,"token":"t"}`))
	f.Add(masked(ws.OpText, true, `{"type":"refresh","id":1,"token":"t"}`))

	catcher := &panicCatcher{}
	srv := New(&Options{Logger: slog.New(catcher), MaxMessageBytes: 4096, Rate: 1e9, Burst: 1 << 30})
	f.Cleanup(func() { srv.Close() })

	f.Fuzz(func(t *testing.T, stream []byte) {
		client, sess, ok := pipeSession(srv, "fuzz")
		if !ok {
			t.Skip("server closed")
		}
		done := make(chan struct{})
		go func() { sess.serve(); close(done) }()
		go io.Copy(io.Discard, client)
		client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		client.Write(stream)
		client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("session still running 5 s after the client closed, input %q", stream)
		}
		if errs := catcher.take(); len(errs) > 0 {
			t.Fatalf("server logged errors for input %q: %v", stream, errs)
		}
	})
}
