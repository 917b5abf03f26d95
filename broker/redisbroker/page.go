package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/rueidis"

	"github.com/heraldhq/herald/broker"
)

// Page implements broker.Pager.
func (b *Broker) Page(ctx context.Context, channel string, before uint64, limit int) (broker.HistoryPage, error) {
	if b.closed.Load() {
		return broker.HistoryPage{}, broker.ErrClosed
	}
	args := append(b.streamArgs(channel, b.history.For(channel)),
		strconv.FormatUint(before, 10),
		strconv.Itoa(max(limit, 0)),
	)
	reply, pos, err := b.exec(ctx, "page", channel, pageScript, b.streamKeys(channel), args)
	if err == nil && len(reply) < 3 {
		err = fmt.Errorf("herald: redisbroker: page: short reply of %d values", len(reply))
	}
	if err != nil {
		return broker.HistoryPage{}, err
	}
	more, _ := reply[2].AsInt64()
	pubs, err := entries(channel, pos.Epoch, reply[3:])
	if err != nil {
		return broker.HistoryPage{}, fmt.Errorf("herald: redisbroker: page: %w", err)
	}
	return broker.HistoryPage{Publications: pubs, Position: pos, More: more == 1}, nil
}

// entries decodes the history entries of a script's reply, five values
// each: offset, data, time, client, user (see push in scripts.go).
func entries(channel, epoch string, reply []rueidis.RedisMessage) ([]broker.Publication, error) {
	if len(reply)%5 != 0 {
		return nil, fmt.Errorf("%d values of entries, not a multiple of 5", len(reply))
	}
	if len(reply) == 0 {
		return nil, nil
	}
	pubs := make([]broker.Publication, len(reply)/5)
	for i := range pubs {
		v := reply[5*i : 5*i+5]
		off, err1 := v[0].AsUint64()
		data, err2 := v[1].AsBytes()
		ts, err3 := v[2].AsInt64()
		client, err4 := v[3].ToString()
		user, err5 := v[4].ToString()
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			return nil, err
		}
		pubs[i] = broker.Publication{Channel: channel, Epoch: epoch, Offset: off, Data: data, Time: ts, From: broker.From{Client: client, User: user}}
	}
	return pubs, nil
}
