package redisbroker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldhq/herald/broker"
)

// Publish implements broker.Broker. data is copied. A publish whose
// non-empty key was already used on the channel, in the current epoch and
// within the history TTL, stores and delivers nothing and returns the first
// publication's position.
//
// An error wrapping broker.ErrUnavailable means Redis could not be reached
// or did not answer within Options.Timeout, or that fewer than
// Options.Replicas replicas confirmed the publication; it may or may not
// have been made, so a retry should carry a key.
func (b *Broker) Publish(ctx context.Context, channel string, data []byte, opts broker.PublishOptions) (broker.StreamPosition, error) {
	if b.closed.Load() {
		return broker.StreamPosition{}, broker.ErrClosed
	}
	x := b.publishExec(channel, data, opts)
	_, pos, err := b.exec(ctx, "publish", channel, publishScript, x.Keys, x.Args)
	return pos, err
}

// PublishBatch implements broker.BatchPublisher: the publishes go to Redis
// in one pipeline, in order, within one Options.Timeout. On Redis Cluster,
// or when a publish waits for Options.Replicas, they go one by one.
func (b *Broker) PublishBatch(ctx context.Context, reqs []broker.PublishRequest, res []broker.PublishResult) {
	if len(reqs) == 1 || b.closed.Load() || b.cluster || b.replicas > 0 {
		// ExecMulti makes sure of the script first, a round trip that Exec
		// saves; on a cluster it does so on every node.
		for i, r := range reqs {
			res[i].Pos, res[i].Err = b.Publish(ctx, r.Channel, r.Data, r.Opts)
		}
		return
	}
	execs := make([]rueidis.LuaExec, len(reqs))
	for i, r := range reqs {
		execs[i] = b.publishExec(r.Channel, r.Data, r.Opts)
	}
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	for i, r := range publishScript.ExecMulti(ctx, b.client, execs...) {
		reply, err := r.ToArray()
		if err != nil {
			res[i].Err = b.wrap(ctx, "publish", err)
			continue
		}
		res[i].Pos, res[i].Err = b.replyPosition("publish", reqs[i].Channel, reply)
	}
}

// publishExec returns the keys and arguments of publishScript.
func (b *Broker) publishExec(channel string, data []byte, opts broker.PublishOptions) rueidis.LuaExec {
	h := b.history.For(channel)
	keys := b.streamKeys(channel)
	if opts.Key != "" {
		keys = append(keys, b.prefix+"key:{"+channel+"}:"+opts.Key)
	}
	args := append(b.streamArgs(channel, h),
		string(data),
		strconv.Itoa(h.Size),
		b.pubName(channel),
		strconv.Itoa(b.maxHistoryBytes),
		strconv.FormatInt(time.Now().UnixMilli(), 10),
		opts.From.Client,
		opts.From.User,
		b.publishCommand(),
	)
	return rueidis.LuaExec{Keys: keys, Args: args}
}

// Position implements broker.Broker. It creates the channel's stream when
// Redis has none, so later publications continue the epoch it returns.
func (b *Broker) Position(ctx context.Context, channel string) (broker.StreamPosition, error) {
	if b.closed.Load() {
		return broker.StreamPosition{}, broker.ErrClosed
	}
	_, pos, err := b.exec(ctx, "position", channel, positionScript, b.streamKeys(channel), b.streamArgs(channel, b.history.For(channel)))
	return pos, err
}

// History implements broker.Broker. since.Offset equal to the current
// offset returns no publication and no error; an offset beyond it, an
// epoch that is not the current one (the zero position included), or a
// publication after since that left history returns
// broker.ErrUnrecoverable, with the current position.
func (b *Broker) History(ctx context.Context, channel string, since broker.StreamPosition, limit int) ([]broker.Publication, broker.StreamPosition, error) {
	if b.closed.Load() {
		return nil, broker.StreamPosition{}, broker.ErrClosed
	}
	h := b.history.For(channel)
	args := append(b.streamArgs(channel, h),
		since.Epoch,
		strconv.FormatUint(since.Offset, 10),
		strconv.Itoa(max(limit, 0)),
		strconv.Itoa(h.Size),
	)
	reply, pos, err := b.exec(ctx, "history", channel, historyScript, b.streamKeys(channel), args)
	if err == nil && len(reply) < 3 {
		err = fmt.Errorf("herald: redisbroker: history: short reply of %d values", len(reply))
	}
	if err != nil {
		return nil, broker.StreamPosition{}, err
	}
	if ok, _ := reply[2].AsInt64(); ok != 1 {
		return nil, pos, broker.ErrUnrecoverable
	}
	pubs, err := entries(channel, pos.Epoch, reply[3:])
	if err != nil {
		return nil, broker.StreamPosition{}, fmt.Errorf("herald: redisbroker: history: %w", err)
	}
	return pubs, pos, nil
}

// exec runs one of the stream scripts of channel, within Options.Timeout,
// and decodes the position that starts its reply (replyPosition). op names
// the call in errors. A publish waits for Options.Replicas.
func (b *Broker) exec(ctx context.Context, op, channel string, script *rueidis.Lua, keys, args []string) ([]rueidis.RedisMessage, broker.StreamPosition, error) {
	wait := b.replicas > 0 && script == publishScript
	var reply []rueidis.RedisMessage
	var err error
	if wait {
		ctx, cancel := context.WithTimeout(ctx, b.timeout+b.replicaTimeout)
		defer cancel()
		reply, err = b.execWait(ctx, keys, args)
	} else {
		ctx, cancel := b.opContext(ctx)
		defer cancel()
		if reply, err = script.Exec(ctx, b.client, keys, args).ToArray(); err != nil {
			err = b.wrap(ctx, op, err)
		}
	}
	if err != nil {
		return nil, broker.StreamPosition{}, err
	}
	pos, err := b.replyPosition(op, channel, reply)
	if err != nil {
		return nil, broker.StreamPosition{}, err
	}
	return reply, pos, nil
}

// replyPosition decodes the position that starts the reply of a stream
// script of channel and records it (see seen).
func (b *Broker) replyPosition(op, channel string, reply []rueidis.RedisMessage) (broker.StreamPosition, error) {
	pos, err := position(reply)
	if err != nil {
		return broker.StreamPosition{}, fmt.Errorf("herald: redisbroker: %s: %w", op, err)
	}
	b.seen.reply(channel, pos)
	return pos, nil
}

// execWait runs publishScript followed by WAIT on the same connection,
// which makes WAIT count the replicas that hold the publication. Redis may
// not know the script yet (a restarted or promoted node): then it runs
// with EVAL, which also loads it.
func (b *Broker) execWait(ctx context.Context, keys, args []string) ([]rueidis.RedisMessage, error) {
	c := b.client
	eval := c.B().Evalsha().Sha1(publishSHA1).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	res := c.DoMulti(ctx, eval, b.waitCommand())
	if err := res[0].Error(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		eval = c.B().Eval().Script(publishSource).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
		res = c.DoMulti(ctx, eval, b.waitCommand())
	}
	reply, err := res[0].ToArray()
	if err != nil {
		return nil, b.wrap(ctx, "publish", err)
	}
	n, err := res[1].AsInt64()
	if err != nil {
		return nil, b.wrap(ctx, "publish: wait", err)
	}
	if n < int64(b.replicas) {
		return nil, fmt.Errorf("%w: redis publish: %d of %d replicas confirmed it within %v", broker.ErrUnavailable, n, b.replicas, b.replicaTimeout)
	}
	return reply, nil
}

func (b *Broker) waitCommand() rueidis.Completed {
	return b.client.B().Wait().Numreplicas(int64(b.replicas)).Timeout(max(b.replicaTimeout.Milliseconds(), 1)).Build()
}

// streamKeys returns the keys of the channel's stream hash and history.
func (b *Broker) streamKeys(channel string) []string {
	keys := make([]string, 2, 3)
	keys[0] = b.prefix + "stream:{" + channel + "}"
	keys[1] = b.prefix + "history:{" + channel + "}"
	return keys
}

// streamArgs returns the arguments every script of channel starts with:
// the epoch to create the stream with if it must start anew, followed by
// the newest position the node saw (see streamPrelude), the stream hash's
// TTL once published to, and the history TTL (the hash's TTL until then).
func (b *Broker) streamArgs(channel string, h broker.HistoryOptions) []string {
	args := make([]string, 3, 11)
	args[0] = broker.NewEpoch() + b.seen.floor(channel)
	args[1] = millis(max(b.streamTTL, h.TTL))
	args[2] = millis(h.TTL)
	return args
}

// position decodes the {epoch, offset} that starts every script's reply.
func position(reply []rueidis.RedisMessage) (broker.StreamPosition, error) {
	if len(reply) < 2 {
		return broker.StreamPosition{}, fmt.Errorf("short reply of %d values", len(reply))
	}
	epoch, err := reply[0].ToString()
	if err != nil {
		return broker.StreamPosition{}, err
	}
	offset, err := reply[1].AsInt64()
	if err != nil {
		return broker.StreamPosition{}, err
	}
	return broker.StreamPosition{Epoch: epoch, Offset: uint64(offset)}, nil
}

// millis formats d in whole milliseconds, at least 1.
func millis(d time.Duration) string {
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10)
}
