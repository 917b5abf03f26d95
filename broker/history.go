package broker

import (
	"context"

	"github.com/heraldhq/herald/protocol"
)

// From is the connection a publication came from (see Publication.From).
// The zero value means the application published it.
type From = protocol.From

// Pager reads a channel's history backwards, one page at a time.
type Pager interface {
	// Page returns the newest limit publications held in history with an
	// offset below before (0: no bound), in offset order, with the
	// channel's current position and whether history holds older ones.
	// limit must be positive. A channel's history is read as History reads
	// it: bounded by size and age, and empty for a new stream.
	Page(ctx context.Context, channel string, before uint64, limit int) (HistoryPage, error)
}

// HistoryPage is one page of a channel's history.
type HistoryPage struct {
	Publications []Publication // ascending offsets, without a gap
	Position     StreamPosition
	More         bool // history holds publications older than the first
}

// fromPtr returns a pointer to a copy of f, or nil for the zero From, as
// the memory broker keeps it with each publication.
func fromPtr(f From) *From {
	if f == (From{}) {
		return nil
	}
	p := new(From) // not &f: that would move f to the heap on every call
	*p = f
	return p
}

func fromOf(p *From) From {
	if p == nil {
		return From{}
	}
	return *p
}
