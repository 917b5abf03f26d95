package doctor_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/doctor"
)

func ExampleRun() {
	srv := herald.New(&herald.Options{PingInterval: 200 * time.Millisecond, PongTimeout: 200 * time.Millisecond})
	hs := httptest.NewServer(srv)
	defer srv.Close()
	defer hs.Close()

	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
	rep := doctor.Run(context.Background(), url, &doctor.Options{Duration: 3 * time.Second})
	for _, c := range rep.Checks {
		fmt.Println(c.Name, c.Status)
	}
	fmt.Println("failed:", rep.Failed())
	// Output:
	// handshake pass
	// heartbeat pass
	// pong pass
	// dead-peer pass
	// close pass
	// validation pass
	// liveness pass
	// failed: false
}
