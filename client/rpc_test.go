package client_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/protocol"
)

// rpcServer is a Herald server whose rpc hook is backend, on real sockets.
func rpcServer(t *testing.T, hooks *herald.HookOptions) string {
	t.Helper()
	srv := herald.New(&herald.Options{Hooks: hooks})
	mux := http.NewServeMux()
	mux.Handle("GET /ws", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
}

func TestRPC(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Method string          `json:"method"`
			Data   json.RawMessage `json:"data"`
		}
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &req)
		if req.Method == "fail" {
			io.WriteString(w, `{"error":{"code":"forbidden","message":"not yours"}}`)
			return
		}
		io.WriteString(w, `{"data":{"method":"`+req.Method+`","got":`+string(req.Data)+`}}`)
	}))
	defer backend.Close()
	c := dialClient(t, rpcServer(t, &herald.HookOptions{RPC: backend.URL}), nil)

	got, err := c.RPC(t.Context(), "getProfile", map[string]int{"id": 42})
	if err != nil || string(got) != `{"method":"getProfile","got":{"id":42}}` {
		t.Fatalf("RPC = %s, %v", got, err)
	}
	got, err = c.RPC(t.Context(), "nothing", nil)
	if err != nil || string(got) != `{"method":"nothing","got":null}` {
		t.Fatalf("RPC without data = %s, %v", got, err)
	}
	var perr *protocol.Error
	if _, err := c.RPC(t.Context(), "fail", nil); !errors.As(err, &perr) || perr.Code != protocol.CodeForbidden || perr.Message != "not yours" {
		t.Fatalf("RPC refused by the backend: %v, want forbidden", err)
	}
	if _, err := c.RPC(t.Context(), "bad method", nil); err == nil {
		t.Fatal("RPC with an invalid method name was sent")
	}

	plain := dialClient(t, rpcServer(t, nil), nil)
	if _, err := plain.RPC(t.Context(), "x", nil); !errors.As(err, &perr) || perr.Code != protocol.CodeBadRequest {
		t.Fatalf("RPC without an rpc hook: %v, want bad_request", err)
	}
	plain.Close()
	if _, err := plain.RPC(t.Context(), "x", nil); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("RPC after Close: %v, want ErrClosed", err)
	}
}
