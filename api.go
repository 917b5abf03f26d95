package herald

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/protocol"
)

// APIHandler serves the HTTP API under /api/ for backends in any language:
//
//	POST /api/publish     {"channel","data","key"}      -> {"offset"}
//	POST /api/broadcast   {"channels":[...],"data","key"} -> {"results":[...]}
//	GET  /api/channels                                   -> {"channels":[{"channel","subscribers"}]}
//	POST /api/disconnect  {"user","code","reason"}       -> {"disconnected"}
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
	if e := checkPublish(*req.Channel, req.Data, req.Key); e != nil {
		apiError(w, e.Code.HTTPStatus(), e.Code, e.Message)
		return
	}
	pos, err := s.apiPublishOne(r.Context(), *req.Channel, req.Data, req.Key)
	if err != nil {
		apiError(w, err.Code.HTTPStatus(), err.Code, err.Message)
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
		if e := checkPublish(ch, req.Data, req.Key); e != nil {
			apiError(w, e.Code.HTTPStatus(), e.Code, e.Message)
			return
		}
	}
	results := make([]broadcastResult, len(req.Channels))
	for i, ch := range req.Channels {
		results[i].Channel = ch
		pos, err := s.apiPublishOne(r.Context(), ch, req.Data, req.Key)
		if err != nil {
			results[i].Error = err
			continue
		}
		results[i].Offset = pos.Offset
	}
	writeJSON(w, map[string]any{"results": results})
}

func checkPublish(channel string, data json.RawMessage, key string) *protocol.Error {
	switch {
	case protocol.ValidateChannel(channel) != nil:
		return &protocol.Error{Code: protocol.CodeInvalidChannel, Message: protocol.ValidateChannel(channel).Error()}
	case data == nil:
		return &protocol.Error{Code: protocol.CodeBadRequest, Message: `missing field "data"`}
	case len(key) > protocol.MaxKeyBytes:
		return &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("key longer than %d bytes", protocol.MaxKeyBytes)}
	}
	return nil
}

func (s *Server) apiPublishOne(ctx context.Context, channel string, data []byte, key string) (broker.StreamPosition, *protocol.Error) {
	pos, err := s.broker.Publish(ctx, channel, data, broker.PublishOptions{Key: apiKeys.of(key)})
	if err == nil {
		return pos, nil
	}
	return pos, s.brokerProblem("publish", err, "channel", channel)
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
	if req.User == nil || *req.User == "" {
		apiError(w, 400, protocol.CodeBadRequest, `field "user" must name a user`)
		return
	}
	code := protocol.CloseCode(req.Code)
	if req.Code == 0 {
		code = protocol.CloseNormal
	}
	if !closeCodeSendable(code) {
		apiError(w, 400, protocol.CodeBadRequest, "code must be 1000, 1001, 1011, 1013 or within 4000-4999")
		return
	}
	n := 0
	for _, sess := range s.snapshot() {
		if sess.user() == *req.User {
			sess.close(code, req.Reason)
			n++
		}
	}
	writeJSON(w, map[string]int{"disconnected": n})
}

func closeCodeSendable(c protocol.CloseCode) bool {
	switch c {
	case protocol.CloseNormal, protocol.CloseGoingAway, protocol.CloseInternal, protocol.CloseTryAgainLater:
		return true
	}
	return c >= 4000 && c <= 4999
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

func apiError(w http.ResponseWriter, status int, code protocol.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"code": string(code), "message": msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
