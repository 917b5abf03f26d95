package broker

import (
	"context"
	"time"
)

// Page implements Pager. The returned publications share their Data with
// the broker's history: callers must not modify it.
func (m *Memory) Page(ctx context.Context, channel string, before uint64, limit int) (HistoryPage, error) {
	s, now, err := m.lock(channel)
	if err != nil {
		return HistoryPage{}, err
	}
	defer s.mu.Unlock()
	s.trim(now)
	page := HistoryPage{Position: StreamPosition{Epoch: s.epoch, Offset: s.offset}}
	first := s.offset + 1 - uint64(s.hist.n) // oldest offset held
	end := s.offset + 1                      // offsets below it qualify
	if before > 0 {
		end = min(end, before)
	}
	if end <= first || limit <= 0 {
		return page, nil
	}
	start := first
	if end-first > uint64(limit) {
		start = end - uint64(limit)
	}
	page.More = start > first
	page.Publications = make([]Publication, end-start)
	for i := range page.Publications {
		off := start + uint64(i)
		page.Publications[i] = s.publication(int(off-first), off)
	}
	return page, nil
}

// publication returns history entry i, at offset off, as a Publication.
func (s *memStream) publication(i int, off uint64) Publication {
	e := s.hist.at(i)
	return Publication{Channel: s.channel, Epoch: s.epoch, Offset: off, Data: e.data, Time: unixMilli(e.at), From: fromOf(e.from)}
}

// unixMilli converts the broker's Unix nanoseconds to milliseconds.
func unixMilli(ns int64) int64 { return time.Unix(0, ns).UnixMilli() }
