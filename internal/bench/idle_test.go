package bench

import (
	"os"
	"testing"
	"time"
)

// TestIdleResultCPUPerConnection checks the idle summary's figure of what
// an idle connection costs: the server's share of a core, in µs per second,
// divided among the connections.
func TestIdleResultCPUPerConnection(t *testing.T) {
	const n = 4
	conns := make([]*Conn, n)
	subs := make([]*subscriber, n)
	for i := range conns {
		conns[i] = &Conn{}
		subs[i] = &subscriber{conn: conns[i]}
	}
	server := CPUUse{CPU: Millis(520 * time.Millisecond), CoreUsed: 0.25} // a quarter of a core
	c := IdleConfig{Target: Target{ServerPID: os.Getpid()}}
	r := idleResult(c, conns, subs, 65*time.Second, ProcStat{}, CPUUse{}, server, nil)
	if r.ServerCPUPerConn == nil || *r.ServerCPUPerConn != 62500 {
		t.Fatalf("server CPU per connection %v, want 62500 µs per second", r.ServerCPUPerConn)
	}
	found := false
	for _, row := range r.Table() {
		found = found || row.Name == "server CPU/connection" && row.Value == "62500.00 µs per second"
	}
	if !found {
		t.Fatalf("summary without the CPU per connection: %v", r.Table())
	}
}

func TestIdleChannel(t *testing.T) {
	for _, c := range []struct {
		channel string
		i       int
		want    string
	}{{"idle", 7, "idle"}, {"idle:{i}", 7, "idle:7"}, {"{i}-{i}", 12, "12-12"}, {"", 3, ""}} {
		if got := idleChannel(c.channel, c.i); got != c.want {
			t.Errorf("idleChannel(%q, %d) = %q, want %q", c.channel, c.i, got, c.want)
		}
	}
}
