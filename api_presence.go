package herald

import (
	"net/http"

	"github.com/heraldhq/herald/protocol"
)

// apiPresenceReply is the answer of POST /api/presence: the present frame
// without type, id and channel.
type apiPresenceReply struct {
	Clients   int               `json:"clients"`
	Users     int               `json:"users"`
	Members   []protocol.Member `json:"members,omitempty"`
	Truncated bool              `json:"truncated,omitempty"`
}

// apiPresence answers POST /api/presence {"channel","count_only"} with who
// is subscribed to the channel, on every node.
func (s *Server) apiPresence(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Channel   *string `json:"channel"`
		CountOnly bool    `json:"count_only"`
	}
	if !s.decodeBody(w, r, &req) {
		return
	}
	if req.Channel == nil {
		apiError(w, 400, protocol.CodeBadRequest, `missing field "channel"`)
		return
	}
	if err := protocol.ValidateChannel(*req.Channel); err != nil {
		apiError(w, 400, protocol.CodeInvalidChannel, err.Error())
		return
	}
	if on, _ := s.presenceOn(*req.Channel); !on {
		apiError(w, 400, protocol.CodeBadRequest, errPresenceOff)
		return
	}
	st, err := s.members(r.Context(), *req.Channel, req.CountOnly)
	if err != nil {
		e := s.brokerProblem("presence", err)
		apiFailure(w, e)
		return
	}
	writeJSON(w, apiPresenceReply{Clients: st.Clients, Users: st.Users, Members: st.Members, Truncated: !req.CountOnly && len(st.Members) < st.Clients})
}
