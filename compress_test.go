package herald_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// chatData is a realistic chat message as JSON, above the default
// compression threshold of 256 bytes.
var chatData = `{"user":"ada","text":"` + strings.Repeat("the quick brown fox jumps over the lazy dog ", 12) + `","tags":["general","random"]}`

// expectMessage reads a message frame, raw, and checks whether it came
// compressed and that it carries data.
func expectMessage(t *testing.T, c *heraldtest.Conn, compressed bool, data string) {
	t.Helper()
	for {
		h, payload, err := c.ReadFrame(heraldtest.Timeout)
		if err != nil {
			t.Fatalf("waiting for message: %v", err)
		}
		if h.OpCode.IsControl() {
			continue
		}
		if h.Rsv1() != compressed {
			t.Fatalf("message RSV1 = %v, want %v", h.Rsv1(), compressed)
		}
		if compressed {
			if payload, err = heraldtest.Inflate(payload); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Contains(payload, []byte(`"data":`+data)) {
			t.Fatalf("message %s, want data %s", payload, data)
		}
		return
	}
}

// TestCompressionNegotiation: with Compression on, a client that offers
// permessage-deflate gets it with both no_context_takeover parameters and
// receives large messages compressed and small ones plain; one that offers
// nothing gets plain frames; without Compression the offer is declined.
func TestCompressionNegotiation(t *testing.T) {
	srv := startServer(t, &herald.Options{Compression: true})
	deflating := heraldtest.DialWelcome(t, srv.url, &heraldtest.DialOptions{Compression: true})
	if len(deflating.Extensions) != 1 {
		t.Fatalf("accepted extensions %v, want permessage-deflate", deflating.Extensions)
	}
	var p wsflate.Parameters
	if err := p.Parse(deflating.Extensions[0]); err != nil || !p.ServerNoContextTakeover || !p.ClientNoContextTakeover {
		t.Fatalf("accepted %s (%v), want server_no_context_takeover and client_no_context_takeover", deflating.Extensions[0].String(), err)
	}
	plain := heraldtest.DialWelcome(t, srv.url, nil)
	deflating.Subscribe(t, 1, "room", nil)
	plain.Subscribe(t, 1, "room", nil)

	pub := heraldtest.DialWelcome(t, srv.url, nil)
	for _, data := range []string{chatData, `{"text":"hi"}`} {
		if f, err := pub.Publish(1, "room", data, ""); err != nil || f.Type != "published" {
			t.Fatalf("publish: %v %v", f, err)
		}
		expectMessage(t, deflating, len(data) > 256, data)
		expectMessage(t, plain, false, data)
	}

	off := startServer(t, nil)
	if c := heraldtest.DialWelcome(t, off.url, &heraldtest.DialOptions{Compression: true}); len(c.Extensions) != 0 {
		t.Fatalf("server without compression accepted %v", c.Extensions)
	}
}

// TestCompressedInbound: a client's compressed messages, in one frame or
// fragmented (RSV1 on the first frame only, a ping between fragments), are
// inflated and served; its replies above the threshold come compressed.
func TestCompressedInbound(t *testing.T) {
	srv := startServer(t, &herald.Options{Compression: true})
	c := heraldtest.DialWelcome(t, srv.url, &heraldtest.DialOptions{Compression: true})
	c.Subscribe(t, 1, "room", nil)

	publish := func(id int) []byte {
		return fmt.Appendf(nil, `{"type":"publish","id":%d,"channel":"room","data":%s}`, id, chatData)
	}
	if err := c.WriteCompressed(ws.OpText, true, heraldtest.Deflate(publish(2))); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, c, true, chatData)
	if f := c.Expect(t, "published"); f.ID != 2 {
		t.Fatalf("reply %s", f)
	}

	z := heraldtest.Deflate(publish(3))
	c.WriteCompressed(ws.OpText, false, z[:len(z)/2])
	c.MustWriteFrame(t, ws.OpPing, true, []byte("mid"))
	c.MustWriteFrame(t, ws.OpContinuation, true, z[len(z)/2:])
	expectMessage(t, c, true, chatData)
	if f := c.Expect(t, "published"); f.ID != 3 {
		t.Fatalf("reply %s", f)
	}

	// A small uncompressed message on the same connection is fine too.
	c.Send(t, `{"type":"ping","id":4}`)
	c.Expect(t, "pong")
}

// TestPublicationCompressedOnce: one publication to 1,000 subscribers that
// negotiated compression is compressed once, and each of them gets it
// compressed.
func TestPublicationCompressedOnce(t *testing.T) {
	const n = 1000
	reg := prometheus.NewRegistry()
	srv := startServer(t, &herald.Options{Compression: true, Registry: reg})
	subs := make([]*heraldtest.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := heraldtest.Dial(context.Background(), srv.url, &heraldtest.DialOptions{Compression: true})
			if err != nil {
				errs <- err
				return
			}
			subs[i] = c
			c.SendText(`{"type":"subscribe","id":1,"channel":"crowd"}`)
			for f, err := c.Next(heraldtest.Timeout); f.Type != "subscribed"; f, err = c.Next(heraldtest.Timeout) {
				if err != nil {
					errs <- err
					return
				}
			}
		}()
		if i%50 == 49 {
			wg.Wait() // a few at a time: the accept backlog is short
		}
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range subs {
			if c != nil {
				c.Close()
			}
		}
	})
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	before := heraldtest.Counter(t, reg, "herald_compressed_messages_total")

	pub := heraldtest.DialWelcome(t, srv.url, nil)
	if f, err := pub.Publish(1, "crowd", chatData, ""); err != nil || f.Type != "published" {
		t.Fatalf("publish: %v %v", f, err)
	}
	for _, c := range subs {
		expectMessage(t, c, true, chatData)
	}
	if got := heraldtest.Counter(t, reg, "herald_compressed_messages_total") - before; got != 1 {
		t.Fatalf("compressed %v times for %d subscribers, want once", got, n)
	}
	in, out := heraldtest.Counter(t, reg, "herald_compression_in_bytes_total"), heraldtest.Counter(t, reg, "herald_compression_out_bytes_total")
	if in <= out || out == 0 {
		t.Fatalf("compression bytes in %v, out %v", in, out)
	}
}

// TestCompressionHostile: a deflate bomb, a compressed control frame, RSV1
// on a continuation frame or on a connection that did not negotiate the
// extension, and a corrupt deflate stream each close only the offending
// connection, with 1009, 1002, 1002, 1002 and 1007; a bystander keeps
// getting its messages.
func TestCompressionHostile(t *testing.T) {
	const max = 64 << 10
	bomb := heraldtest.Deflate(make([]byte, 16<<20)) // 16 MiB of zeros in about 16 KiB
	cases := []struct {
		name      string
		negotiate bool
		send      func(c *heraldtest.Conn) error
		code      int
	}{
		{"deflate bomb", true, func(c *heraldtest.Conn) error { return c.WriteCompressed(ws.OpText, true, bomb) }, 1009},
		{"compressed ping", true, func(c *heraldtest.Conn) error { return c.WriteCompressed(ws.OpPing, true, nil) }, 1002},
		{"compressed continuation", true, func(c *heraldtest.Conn) error {
			c.WriteFrame(ws.OpText, false, []byte(`{"type":`))
			return c.WriteCompressed(ws.OpContinuation, true, []byte(`"ping","id":1}`))
		}, 1002},
		{"RSV1 without negotiation", false, func(c *heraldtest.Conn) error {
			return c.WriteCompressed(ws.OpText, true, heraldtest.Deflate([]byte(`{"type":"ping","id":1}`)))
		}, 1002},
		{"corrupt stream", true, func(c *heraldtest.Conn) error {
			return c.WriteCompressed(ws.OpText, true, []byte{0xff, 0xfe, 0xfd, 0x00})
		}, 1007},
	}
	srv := startServer(t, &herald.Options{Compression: true, MaxMessageBytes: max})
	bystander := heraldtest.DialWelcome(t, srv.url, &heraldtest.DialOptions{Compression: true})
	bystander.Subscribe(t, 1, "room", nil)
	pub := heraldtest.DialWelcome(t, srv.url, nil)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := heraldtest.DialWelcome(t, srv.url, &heraldtest.DialOptions{Compression: tc.negotiate})
			if err := tc.send(c); err != nil {
				t.Fatal(err)
			}
			if code := c.ExpectClose(t, 5*time.Second); code != tc.code {
				t.Fatalf("close code %d, want %d", code, tc.code)
			}
			data := fmt.Sprintf(`{"after":%d,"pad":"%s"}`, i, strings.Repeat("x", 300))
			if f, err := pub.Publish(uint64(i+1), "room", data, ""); err != nil || f.Type != "published" {
				t.Fatalf("publish: %v %v", f, err)
			}
			expectMessage(t, bystander, true, data)
		})
	}
}
