package herald_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// Every frame takes a token from the connection's bucket, as PROTOCOL.md
// says: pongs and fragments of a message too, not only requests and pings.
func TestEveryFrameTakesAToken(t *testing.T) {
	srv := startServer(t, &herald.Options{Rate: 10, Burst: 3})
	t.Run("pongs", func(t *testing.T) {
		c := heraldtest.DialWelcome(t, srv.url, nil)
		for range 6 {
			c.MustWriteFrame(t, ws.OpPong, true, nil)
		}
		c.Send(t, `{"type":"ping","id":1}`)
		c.ExpectError(t, "rate_limited", 1)
	})
	t.Run("empty fragments", func(t *testing.T) {
		c := heraldtest.DialWelcome(t, srv.url, nil)
		c.MustWriteFrame(t, ws.OpText, false, nil)
		for range 5 {
			c.MustWriteFrame(t, ws.OpContinuation, false, nil)
		}
		c.MustWriteFrame(t, ws.OpContinuation, true, []byte(`{"type":"ping","id":1}`))
		c.ExpectError(t, "rate_limited", 1)
	})
}

// A connection may publish PublishBytesBurst bytes of data at once and
// PublishBytesRate per second after that; past it publishes are answered
// rate_limited with a retry time, and other connections are not affected.
func TestPublishByteRate(t *testing.T) {
	srv := startServer(t, &herald.Options{MaxMessageBytes: 20 << 10, PublishBytesRate: 1 << 10, PublishBytesBurst: 35 << 10})
	data := `"` + strings.Repeat("x", 10<<10) + `"` // 10 KiB and 2 bytes
	c := heraldtest.DialWelcome(t, srv.url, nil)
	for i := range 3 {
		c.Send(t, fmt.Sprintf(`{"type":"publish","id":%d,"channel":"big","data":%s}`, i+1, data))
		c.Expect(t, "published")
	}
	c.Send(t, fmt.Sprintf(`{"type":"publish","id":4,"channel":"big","data":%s}`, data))
	e := c.ExpectError(t, "rate_limited", 4).Fields()
	// 5 KiB of the burst are left; the other 5 KiB come in at 1 KiB/s.
	if ms, _ := e["retry_after_ms"].(float64); ms < 4000 || ms > 5100 {
		t.Fatalf("retry_after_ms = %v, want the time until the 10 KiB are there (about 5 s)", e["retry_after_ms"])
	}
	c.Send(t, `{"type":"publish","id":5,"channel":"big","data":1}`) // small ones still fit
	c.Expect(t, "published")
	other := heraldtest.DialWelcome(t, srv.url, nil)
	other.Send(t, fmt.Sprintf(`{"type":"publish","id":1,"channel":"big","data":%s}`, data))
	other.Expect(t, "published")
}
