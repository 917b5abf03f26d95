package herald

import (
	"net/http"

	"github.com/heraldhq/herald/protocol"
)

// apiHistoryResponse is the answer of POST /api/history: a page frame
// without its type, id and channel.
type apiHistoryResponse struct {
	Epoch    string                 `json:"epoch"`
	Offset   uint64                 `json:"offset"`
	More     bool                   `json:"more"`
	Messages []protocol.PageMessage `json:"messages"`
}

// apiHistory serves POST /api/history {"channel","limit","before"}: one
// page of the channel's history, as the history request reads it.
func (s *Server) apiHistory(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Channel *string `json:"channel"`
		Limit   *int    `json:"limit"`
		Before  *uint64 `json:"before"`
	}
	if !s.decodeBody(w, r, &req) {
		return
	}
	if req.Channel == nil {
		apiError(w, 400, protocol.CodeBadRequest, `missing field "channel"`)
		return
	}
	if e := protocol.CheckPage(req.Limit, req.Before); e != nil {
		apiFailure(w, e)
		return
	}
	limit := protocol.DefaultPageLimit
	if req.Limit != nil {
		limit = *req.Limit
	}
	var before uint64
	if req.Before != nil {
		before = *req.Before
	}
	page, err := s.History(r.Context(), *req.Channel, before, limit)
	if err != nil {
		apiFailure(w, err)
		return
	}
	writeJSON(w, apiHistoryResponse{Epoch: page.Position.Epoch, Offset: page.Position.Offset, More: page.More, Messages: pageMessages(page.Publications)})
}
