package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/bench"
)

func init() {
	register(&command{name: "bench", summary: "load-test a running server: fanout, idle, storm or publish", run: runBench})
}

const benchSynopsis = `SCENARIO [flags]

Scenarios:
  fanout   --subscribers S on one channel, one publisher of --size B payloads
           at --rate R per second (0: as fast as replies allow, --inflight at
           a time) for --duration; reports delivered/s, lost, duplicated, out
           of order, latency percentiles and, with --server-pid, server CPU
           per delivered message; with --publish-url the publisher connects
           there, to another node on the same broker (--server-pid: the
           subscribers' node)
  idle     --connections N held for --hold (default: two ping intervals plus
           the pong timeout); reports survivors and, with --server-pid, server
           RSS per connection
  storm    --subscribers S Go clients while a publisher publishes --rate per
           second; at --disrupt-at the shell command --disrupt runs (a server
           restart, say); reports when all were back, attempts per 100 ms,
           lost, duplicated and recovered true/false
  publish  --publishers P publish --size B payloads for --duration; reports
           throughput and acknowledgement latency

Progress goes to stderr every second, the summary to stdout (--json for JSON).
The load side's own CPU use is part of the summary.`

// benchFlags are the flags of every scenario; each uses the ones it needs.
type benchFlags struct {
	target      bench.Target
	publishURL  string
	json        bool
	channel     string
	subscribers int
	connections int
	publishers  int
	size        int
	rate        float64
	inflight    int
	duration    time.Duration
	hold        time.Duration
	disrupt     string
	disruptAt   time.Duration
	parallel    int
	sameChan    bool
	chat        bool
}

func (b *benchFlags) register(fs *flag.FlagSet) {
	fs.String("config", "", "YAML file with flag values (keys named like the flags)")
	fs.StringVar(&b.target.URL, "url", defaultURL, "server WebSocket URL")
	fs.StringVar(&b.publishURL, "publish-url", "", "fanout: the publisher's WebSocket URL, another node on the same broker (default: --url)")
	fs.StringVar(&b.target.Token, "token", "", "bearer token sent with every upgrade")
	fs.IntVar(&b.target.ServerPID, "server-pid", 0, "the server's process id on this machine, to report its CPU time and RSS")
	fs.BoolVar(&b.json, "json", false, "print the summary as JSON")
	fs.StringVar(&b.channel, "channel", "", "channel (default bench:SCENARIO; idle: none, and {i} in it is the connection's number, for a channel each)")
	fs.IntVar(&b.subscribers, "subscribers", 1000, "fanout, storm: subscribing connections")
	fs.IntVar(&b.connections, "connections", 10000, "idle: connections")
	fs.IntVar(&b.publishers, "publishers", 1, "publish: publishing connections")
	fs.BoolVar(&b.sameChan, "same-channel", false, "publish: all publishers on one channel instead of one each")
	fs.IntVar(&b.size, "size", 100, "payload bytes")
	fs.Float64Var(&b.rate, "rate", 0, "publications per second (0: as fast as replies allow; storm: default 20)")
	fs.IntVar(&b.inflight, "inflight", 0, "fanout, publish: publishes awaiting their reply, per publisher (0: 1 at the maximum rate, 64 at a fixed --rate)")
	fs.DurationVar(&b.duration, "duration", 10*time.Second, "how long to publish (storm: default 30s)")
	fs.DurationVar(&b.hold, "hold", 0, "idle: how long to hold the connections (0: two ping intervals plus the pong timeout)")
	fs.StringVar(&b.disrupt, "disrupt", "", "storm: shell command run at --disrupt-at")
	fs.DurationVar(&b.disruptAt, "disrupt-at", 5*time.Second, "storm: when to run --disrupt")
	fs.IntVar(&b.parallel, "parallel", 50, "connections dialled at a time")
	fs.BoolVar(&b.target.Compression, "compression", false, "offer permessage-deflate on every connection, as browsers do (the server needs --compression to accept it)")
	fs.BoolVar(&b.chat, "chat", false, "fanout: payloads are realistic chat JSON (sender, room, text of common words) instead of padding, for compression figures")
}

// tabler is a scenario's result.
type tabler interface{ Table() []bench.Row }

func runBench(ctx context.Context, std stdio, args []string) error {
	var b benchFlags
	fs := newFlagSet("bench", benchSynopsis, std)
	b.register(fs)
	// The scenario comes first, and flag parsing stops at the first
	// argument that is not a flag: take it off before parsing.
	var scenario string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		scenario, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if scenario == "" && fs.NArg() > 0 {
		scenario = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if scenario == "" {
		return usageError{errors.New("want a SCENARIO: fanout, idle, storm or publish")}
	}
	b.target.Progress = std.err
	res, err := b.run(ctx, scenario, durationGiven(fs))
	if err != nil {
		return err
	}
	if b.json {
		enc := json.NewEncoder(std.out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return bench.WriteTable(std.out, "herald bench "+scenario, res.Table())
}

func durationGiven(fs *flag.FlagSet) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "duration" })
	return given
}

func (b *benchFlags) run(ctx context.Context, scenario string, durationGiven bool) (tabler, error) {
	if b.size < 0 || b.rate < 0 || b.subscribers < 1 || b.connections < 1 || b.publishers < 1 || b.inflight < 0 {
		return nil, usageError{errors.New("--size and --rate must not be negative; --inflight must not be negative; --subscribers, --connections and --publishers at least 1")}
	}
	t := b.target
	switch scenario {
	case "fanout":
		return bench.Fanout(ctx, bench.FanoutConfig{Target: t, PublishURL: b.publishURL, Channel: b.channel, Subscribers: b.subscribers, Size: b.size,
			Rate: b.rate, Inflight: b.inflight, Duration: b.duration, Parallel: b.parallel, Chat: b.chat})
	case "idle":
		return bench.Idle(ctx, bench.IdleConfig{Target: t, Connections: b.connections, Channel: b.channel, Hold: b.hold, Parallel: b.parallel})
	case "storm":
		c := bench.StormConfig{Target: t, Channel: b.channel, Subscribers: b.subscribers, Size: b.size, Rate: b.rate,
			DisruptAt: b.disruptAt, Disrupt: b.disrupt, Parallel: b.parallel}
		if durationGiven {
			c.Duration = b.duration
		}
		return bench.Storm(ctx, c)
	case "publish":
		return bench.Publish(ctx, bench.PublishConfig{Target: t, Channel: b.channel, SameChannel: b.sameChan, Publishers: b.publishers,
			Size: b.size, Rate: b.rate, Inflight: b.inflight, Duration: b.duration})
	}
	return nil, usageError{fmt.Errorf("unknown scenario %q (want fanout, idle, storm or publish)", scenario)}
}
