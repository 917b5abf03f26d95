package faults_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"
)

func init() {
	toxics.Register("blackhole", new(blackholeToxic))
	toxics.Register("cutter", new(cutterToxic))
	zerolog.SetGlobalLevel(zerolog.Disabled) // toxics log to zerolog's global logger
}

// toxiServer is the in-process toxiproxy the proxies belong to; its HTTP
// API is not started.
var toxiServer = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())

// faultProxy is a toxiproxy proxy from a port of 127.0.0.1 to the server.
type faultProxy struct {
	p *toxiproxy.Proxy
}

func startProxy(t *testing.T, name, upstream string) *faultProxy {
	t.Helper()
	p := toxiproxy.NewProxy(toxiServer, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return &faultProxy{p: p}
}

func (f *faultProxy) wsURL() string { return "ws://" + f.p.Listen + "/ws" }

// addToxic adds a toxic to one stream ("upstream": towards the server,
// "downstream": towards the subscriber), to its open connections and to
// every new one, until removeToxic.
func (f *faultProxy) addToxic(name, typ, stream string, attrs string) error {
	js := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, name, typ, stream, attrs)
	_, err := f.p.Toxics.AddToxicJson(strings.NewReader(js))
	return err
}

func (f *faultProxy) removeToxic(name string) error {
	return f.p.Toxics.RemoveToxic(context.Background(), name)
}

// toxicBothWays adds the toxic to both streams and returns what removes it.
func (f *faultProxy) toxicBothWays(typ, attrs string) (clear func() error, err error) {
	for _, s := range []string{"upstream", "downstream"} {
		if err := f.addToxic(typ+"_"+s, typ, s, attrs); err != nil {
			return nil, err
		}
	}
	return func() error {
		return errors.Join(f.removeToxic(typ+"_upstream"), f.removeToxic(typ+"_downstream"))
	}, nil
}

// cutEvery closes every connection of the proxy at every multiple of
// period on the wall clock, as a flapping path or a load balancer that drops
// its connections would, until the returned function is called. Between
// cuts the proxy accepts and forwards as usual.
func (f *faultProxy) cutEvery(period time.Duration) (stop func() error, err error) {
	attrs := fmt.Sprintf(`{"period":%d}`, period.Milliseconds())
	if err := f.addToxic("cutter", "cutter", "downstream", attrs); err != nil {
		return nil, err
	}
	return func() error { return f.removeToxic("cutter") }, nil
}

// cutterToxic forwards data until the next multiple of Period on the wall
// clock, then closes the connection. Closing one direction's output closes
// the socket it writes to, which ends the other direction too.
type cutterToxic struct {
	Period int64 `json:"period"` // milliseconds
}

func (t *cutterToxic) Pipe(stub *toxics.ToxicStub) {
	period := time.Duration(t.Period) * time.Millisecond
	now := time.Now()
	cut := time.NewTimer(now.Truncate(period).Add(period).Sub(now))
	defer cut.Stop()
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			stub.Output <- c
		case <-cut.C:
			stub.Close()
			discard(stub)
			return
		}
	}
}

// discard reads and drops what still reaches a closed stub, so that the
// toxics before it do not block, until the link ends or the toxic is
// removed.
func discard(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				return
			}
		}
	}
}

// blackholeToxic forwards nothing and closes nothing: bytes and hang-ups
// from either side vanish, and both sockets stay open, as when a NAT entry
// or a mobile link is lost without a reset. Only the endpoints' own
// heartbeats can tell that the connection is dead. When the toxic is
// removed, data flows again; a hang-up swallowed meanwhile is passed on.
type blackholeToxic struct{}

type blackholeState struct{ eof bool }

func (*blackholeToxic) NewState() any { return new(blackholeState) }

func (*blackholeToxic) Pipe(stub *toxics.ToxicStub) {
	st := stub.State.(*blackholeState)
	input := stub.Input
	if st.eof {
		input = nil
	}
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-input:
			if c == nil {
				st.eof = true
				input = nil
			}
		}
	}
}

func (*blackholeToxic) Cleanup(stub *toxics.ToxicStub) {
	if stub.State.(*blackholeState).eof {
		stub.Close()
	}
}
