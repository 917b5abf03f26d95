package herald

import (
	"github.com/heraldhq/herald/protocol"
)

// rpc serves a remote procedure call with the rpc hook of the method's
// namespace (the part of the method before its first ':') and answers
// result with the backend's data. Without an rpc hook it is bad_request.
func (s *session) rpc(req *protocol.RPC) {
	ep := s.srv.hooks.endpoint(hookRPC, protocol.Namespace(req.Method))
	if ep == nil {
		s.replyError(req.ID, protocol.CodeBadRequest, "rpc is not configured")
		return
	}
	a, ok := s.ask(ep, req.ID, rpcRequest{Client: s.id, User: s.identity.User, Info: s.hookInfo(), Method: req.Method, Data: nullIfEmpty(req.Data)})
	if ok && req.ID != 0 {
		s.send(&protocol.Result{ID: req.ID, Data: nullIfEmpty(a.Data)})
	}
}
