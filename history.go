package herald

import (
	"context"
	"fmt"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/protocol"
)

// History pages and the backlog of a subscribe with last (PROTOCOL.md,
// Backlog on subscribe and History pages).

// backlog returns the newest last publications held, with offsets up to
// the returned position, for a subscribe with last. Publications too large
// for the send queue could never be queued: the backlog starts after the
// newest such one.
func (s *session) backlog(ctx context.Context, ch string, last int) ([]broker.Publication, broker.StreamPosition, error) {
	page, err := s.srv.broker.Page(ctx, ch, 0, last)
	if err != nil {
		return nil, broker.StreamPosition{}, err
	}
	pubs := page.Publications
	for i := len(pubs) - 1; i >= 0; i-- {
		if messageFrameSize(pubs[i]) > s.srv.opts.SendQueueBytes {
			pubs = pubs[i+1:]
			break
		}
	}
	return pubs, page.Position, nil
}

// history answers a history request with a page. Whoever may subscribe to
// the channel may read it. A page is cut, oldest messages first, to half
// the send queue, and then says more: the client pages on from its first
// message.
func (s *session) history(ctx context.Context, req *protocol.History) {
	if e := s.authorize(ActionSubscribe, req.Channel); e != nil {
		e.ID = req.ID
		s.reply(e)
		return
	}
	page, err := s.srv.broker.Page(ctx, req.Channel, req.PageBefore(), req.PageLimit())
	if err != nil {
		s.brokerError(req.ID, "history", err)
		return
	}
	pubs, size := page.Publications, 0
	for i := len(pubs) - 1; i >= 0; i-- {
		if size += messageFrameSize(pubs[i]); size > s.srv.opts.SendQueueBytes/2 && i < len(pubs)-1 {
			pubs, page.More = pubs[i+1:], true
			break
		}
	}
	s.send(&protocol.Page{ID: req.ID, Channel: req.Channel, Epoch: page.Position.Epoch, Offset: page.Position.Offset,
		More: page.More, Messages: pageMessages(pubs)})
}

// pageMessages returns publications as the messages of a page.
func pageMessages(pubs []broker.Publication) []protocol.PageMessage {
	msgs := make([]protocol.PageMessage, len(pubs))
	for i := range pubs {
		p := &pubs[i]
		msgs[i] = protocol.PageMessage{Offset: p.Offset, TS: p.Time, From: fromField(&p.From), Data: p.Data}
	}
	return msgs
}

// History returns one page of channel's history, as POST /api/history
// does: the newest limit messages held with an offset below before (0
// means from the newest; limit 0 means protocol.DefaultPageLimit), in
// offset order, with the channel's position and whether older ones are
// held. It is not subject to namespace access rules. An invalid channel
// name, a limit outside 1 to protocol.MaxPageLimit, and the broker's
// errors wrap a *protocol.Error whose Code says which (see errors.As).
// History is safe for concurrent use.
func (s *Server) History(ctx context.Context, channel string, before uint64, limit int) (broker.HistoryPage, error) {
	if limit == 0 {
		limit = protocol.DefaultPageLimit
	}
	if err := protocol.ValidateChannel(channel); err != nil {
		return broker.HistoryPage{}, historyError(channel, &protocol.Error{Code: protocol.CodeInvalidChannel, Message: err.Error()})
	}
	var b *uint64
	if before != 0 {
		b = &before
	}
	if e := protocol.CheckPage(&limit, b); e != nil {
		return broker.HistoryPage{}, historyError(channel, e)
	}
	page, err := s.broker.Page(ctx, channel, before, limit)
	if err != nil {
		return page, historyError(channel, s.brokerProblem("history", err, "channel", channel))
	}
	return page, nil
}

func historyError(channel string, e *protocol.Error) error {
	return fmt.Errorf("herald: history of %q: %w", channel, e)
}
