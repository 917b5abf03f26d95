package herald

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// chatData is a chat message of about 1 KiB as a chat service sends it
// (the text, again as rich-text blocks, the sender's profile, reactions),
// ids and hashes included: what `herald bench fanout --chat` publishes.
var chatData = []byte(`{"type":"message","client_msg_id":"61d4f89f-1236-4ead-a226-14a4a80236f2","text":"is good what can meeting no would if yes a tomorrow think should","user":"U2CAB8B38","ts":"1796614087.239685","team":"T024BE7LD","channel":"C2147483705","blocks":[{"type":"rich_text","block_id":"9c237","elements":[{"type":"rich_text_section","elements":[{"type":"text","text":"is good what can meeting no would if yes a tomorrow think should"}]}]}],"user_profile":{"avatar_hash":"05e1f1d64f59","image_72":"https://avatars.slack-edge.com/2026-01-01/749439800_05e1f1d64f59_72.png","image_192":"https://avatars.slack-edge.com/2026-01-01/749439800_05e1f1d64f59_192.png","first_name":"linus","real_name":"linus","display_name":"linus","team":"T024BE7LD","name":"linus","is_restricted":false,"is_ultra_restricted":false},"thread_ts":"1796614087.239685","reply_count":11,"reactions":[{"name":"thumbsup","users":["U0C71C702","U0A5F0E78"],"count":2},{"name":"eyes","users":["U1D2E3F40","U5A6B7C8D"],"count":2}],"edited":false,"topic":"meeting now on think channel the fix no"}`)

// BenchmarkPublishFanoutCompression publishes 1 KiB chat messages to 5,000
// subscribers on loopback TCP that all negotiated compression, or none:
// each publication is compressed once, so the cost per delivery barely
// moves.
func BenchmarkPublishFanoutCompression(b *testing.B) {
	for _, deflate := range []bool{false, true} {
		b.Run(fmt.Sprintf("compression=%v", deflate), func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			benchFanout(b, 5000, chatData, deflate, func(b *testing.B) net.Conn { return drainedPair(b, ln) })
		})
	}
}

// BenchmarkIdleConnectionHeap upgrades 2,000 connections, offering
// permessage-deflate or not, to a server with compression on, and reports
// the server's heap per idle connection after a collection (the clients'
// side is a bare socket each, the same in both).
func BenchmarkIdleConnectionHeap(b *testing.B) {
	const n = 2000
	for _, offer := range []bool{false, true} {
		b.Run(fmt.Sprintf("compression=%v", offer), func(b *testing.B) {
			srv := New(&Options{Logger: slog.New(slog.DiscardHandler), Compression: true})
			hs := httptest.NewServer(srv)
			defer func() { hs.Close(); srv.Close() }()
			conns := make([]net.Conn, 0, n)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			dial := func() {
				c, err := rawUpgrade(hs.Listener.Addr().String(), offer)
				if err != nil {
					b.Fatal(err)
				}
				conns = append(conns, c)
			}
			dial() // the poller, the HTTP server's goroutines
			before := heraldtest.HeapAfterGC()
			for range n {
				dial()
			}
			for srv.Connections() < n+1 {
				runtime.Gosched()
			}
			b.ReportMetric(float64(heraldtest.HeapAfterGC()-before)/n, "heap-B/conn")
			for range b.N {
			}
		})
	}
}

// rawUpgrade upgrades a connection by hand, reading the response and the
// welcome that follows, so that the client keeps nothing but the socket.
func rawUpgrade(addr string, offerDeflate bool) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	ext := ""
	if offerDeflate {
		ext = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: herald.v1\r\n%s\r\n", addr, ext)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || offerDeflate != strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		c.Close()
		return nil, fmt.Errorf("upgrade answered %s, extensions %q", resp.Status, resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	if _, err := ws.ReadFrame(br); err != nil { // welcome
		c.Close()
		return nil, err
	}
	return c, nil
}
