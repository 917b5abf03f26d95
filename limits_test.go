package herald_test

import (
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
