package herald

import (
	"context"
	"net/http"

	"github.com/heraldhq/herald/broker"
)

// Ready reports whether the server can serve: it is not shutting down and
// its broker, when it can tell, is reachable.
func (s *Server) Ready(ctx context.Context) error {
	if s.stopping.Load() {
		return ErrShuttingDown
	}
	if c, ok := s.broker.(broker.Checker); ok {
		return c.Check(ctx)
	}
	return nil
}

// ReadyHandler answers 200 while Ready reports no error, else 503 with the
// reason; use it for /readyz.
func (s *Server) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.Ready(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
}
