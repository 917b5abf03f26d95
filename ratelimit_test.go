package herald_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestWelcomeAdvertisesRateLimit: welcome carries the connection's rate and
// burst, so that clients can pace themselves.
func TestWelcomeAdvertisesRateLimit(t *testing.T) {
	srv := startServer(t, &herald.Options{Rate: 7.5, Burst: 12})
	w := heraldtest.MustDial(t, srv.url, nil).Expect(t, "welcome").Fields()
	if w["rate"] != 7.5 || w["burst"] != 12.0 {
		t.Fatalf("welcome = %v, want rate 7.5 and burst 12", w)
	}
}

// TestRateLimitedIsNotABadRequest: a client that pipelines far more requests
// than the burst (a reconnect resubscribing many channels) gets rate_limited
// for some of them, many more than the bad-request limit, and keeps its
// connection: every request is answered, and none with 4029.
func TestRateLimitedIsNotABadRequest(t *testing.T) {
	const requests = 150
	srv := startServer(t, &herald.Options{Rate: 200, Burst: 10, MaxErrors: 20})
	c := heraldtest.DialWelcome(t, srv.url, nil)
	for i := range requests {
		c.Send(t, fmt.Sprintf(`{"type":"subscribe","id":%d,"channel":"ch-%d"}`, i+1, i))
	}
	limited := 0
	for range requests {
		f, err := c.Next(heraldtest.Timeout)
		if err != nil {
			t.Fatalf("after %d rate_limited replies: %v", limited, err)
		}
		switch {
		case f.Type == "subscribed":
		case f.Type == "error" && f.Code == "rate_limited":
			limited++
		default:
			t.Fatalf("got %s, want subscribed or rate_limited", f)
		}
	}
	if limited < 20 {
		t.Fatalf("%d rate_limited replies, want at least the 20 of the bad-request limit", limited)
	}
	time.Sleep(100 * time.Millisecond)       // the bucket refills (10 at 200/s)
	c.Subscribe(t, requests+1, "after", nil) // still open
}
