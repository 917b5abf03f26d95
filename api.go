package herald

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/heraldhq/herald/protocol"
)

// APIHandler serves the HTTP API under /api/ for backends in any language:
//
//	POST /api/publish     {"channel","data","key"}      -> {"offset"}
//	POST /api/broadcast   {"channels":[...],"data","key"} -> {"results":[...]}
//	GET  /api/channels                                   -> {"channels":[{"channel","subscribers"}]}
//	POST /api/disconnect  {"user","code","reason"}       -> {"disconnected"}
//	POST /api/presence    {"channel","count_only"}       -> {"clients","users","members","truncated"}
//	GET  /api/stats                                      -> Stats
//
// Every call needs "Authorization: Bearer <Options.APIKey>"; without an
// APIKey every path answers 404. Errors are JSON {"code","message"} with the
// codes of PROTOCOL.md. Publishes through the API are not subject to
// namespace access rules; their idempotency keys are the API's own, apart
// from those of WebSocket publishers.
func (s *Server) APIHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/publish", s.apiPublish)
	mux.HandleFunc("POST /api/broadcast", s.apiBroadcast)
	mux.HandleFunc("GET /api/channels", s.apiChannels)
	mux.HandleFunc("POST /api/disconnect", s.apiDisconnect)
	mux.HandleFunc("POST /api/presence", s.apiPresence)
	mux.HandleFunc("POST /api/history", s.apiHistory)
	mux.HandleFunc("GET /api/stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Stats()) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.APIKey == "" {
			http.NotFound(w, r)
			return
		}
		if !s.hostAllowed(r) {
			apiError(w, http.StatusForbidden, protocol.CodeForbidden, "host not allowed")
			return
		}
		if !s.apiKeyOK(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
			apiError(w, http.StatusUnauthorized, protocol.CodeUnauthorized, "missing or wrong API key")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) apiKeyOK(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.APIKey)) == 1
}

type apiPublishRequest struct {
	Channel  *string         `json:"channel"`
	Channels []string        `json:"channels"`
	Data     json.RawMessage `json:"data"`
	Key      string          `json:"key"`
}

func (s *Server) apiPublish(w http.ResponseWriter, r *http.Request) {
	var req apiPublishRequest
	if !s.decodeBody(w, r, &req) {
		return
	}
	if req.Channel == nil {
		apiError(w, 400, protocol.CodeBadRequest, `missing field "channel"`)
		return
	}
	pos, err := s.Publish(r.Context(), *req.Channel, req.Data, &PublishOptions{Key: req.Key})
	if err != nil {
		apiFailure(w, err)
		return
	}
	writeJSON(w, map[string]uint64{"offset": pos.Offset})
}

// broadcastResult is one channel's outcome of a broadcast.
type broadcastResult struct {
	Channel string          `json:"channel"`
	Offset  uint64          `json:"offset,omitempty"`
	Error   *protocol.Error `json:"error,omitempty"`
}

func (s *Server) apiBroadcast(w http.ResponseWriter, r *http.Request) {
	var req apiPublishRequest
	if !s.decodeBody(w, r, &req) {
		return
	}
	if len(req.Channels) == 0 {
		apiError(w, 400, protocol.CodeBadRequest, `field "channels" must list at least one channel`)
		return
	}
	for _, ch := range req.Channels {
		if e := s.checkPublish(ch, req.Data, req.Key); e != nil {
			apiFailure(w, e)
			return
		}
	}
	results := make([]broadcastResult, len(req.Channels))
	for i, ch := range req.Channels {
		results[i].Channel = ch
		pos, err := s.Publish(r.Context(), ch, req.Data, &PublishOptions{Key: req.Key})
		if err != nil {
			results[i].Error = asProtocolError(err)
			continue
		}
		results[i].Offset = pos.Offset
	}
	writeJSON(w, map[string]any{"results": results})
}

// channelInfo is one channel of /api/channels.
type channelInfo struct {
	Channel     string `json:"channel"`
	Subscribers int    `json:"subscribers"`
}

// apiChannels lists this node's channels with local subscribers.
func (s *Server) apiChannels(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]any{"channels": s.hub.channelList()})
}

func (s *Server) apiDisconnect(w http.ResponseWriter, r *http.Request) {
	var req struct {
		User   *string `json:"user"`
		Code   int     `json:"code"`
		Reason string  `json:"reason"`
	}
	if !s.decodeBody(w, r, &req) {
		return
	}
	if req.User == nil {
		apiError(w, 400, protocol.CodeBadRequest, `missing field "user"`)
		return
	}
	n, err := s.Disconnect(*req.User, protocol.CloseCode(req.Code), req.Reason)
	if err != nil {
		apiFailure(w, err)
		return
	}
	writeJSON(w, map[string]int{"disconnected": n})
}

// decodeBody reads a JSON object body of at most MaxMessageBytes, answering
// 413 or 400 itself when it cannot.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body := http.MaxBytesReader(w, r.Body, int64(s.opts.MaxMessageBytes))
	err := json.NewDecoder(body).Decode(v)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		apiError(w, http.StatusRequestEntityTooLarge, protocol.CodeBadRequest, fmt.Sprintf("body larger than %d bytes", s.opts.MaxMessageBytes))
		return false
	case err != nil:
		apiError(w, 400, protocol.CodeBadRequest, "body must be a JSON object of the documented fields: "+err.Error())
		return false
	}
	return true
}

// apiFailure answers with the *protocol.Error that err wraps.
func apiFailure(w http.ResponseWriter, err error) {
	e := asProtocolError(err)
	apiError(w, e.Code.HTTPStatus(), e.Code, e.Message)
}

// asProtocolError returns the *protocol.Error err wraps; every error of
// Publish and Disconnect wraps one.
func asProtocolError(err error) *protocol.Error {
	var e *protocol.Error
	if errors.As(err, &e) {
		return e
	}
	return &protocol.Error{Code: protocol.CodeInternal, Message: "internal error"}
}

func apiError(w http.ResponseWriter, status int, code protocol.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"code": string(code), "message": msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
