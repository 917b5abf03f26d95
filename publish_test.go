package herald_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/protocol"
)

// TestServerPublish: Server.Publish delivers to WebSocket subscribers and
// returns the offset; its idempotency keys are the HTTP API's: a key used
// by one dedupes the other, and not a WebSocket client's.
func TestServerPublish(t *testing.T) {
	srv := startAPIServer(t, herald.Options{APIKey: "k"})
	sub := dialSubscriber(t, srv.url, "chat")
	ctx := t.Context()

	pos, err := srv.Publish(ctx, "chat", []byte(`{"text":"hi"}`), nil)
	if err != nil || pos.Offset != 1 || pos.Epoch == "" {
		t.Fatalf("Publish: %v, %v", pos, err)
	}
	if m := sub.Expect(t, "message").Fields(); m["offset"] != 1.0 || m["data"].(map[string]any)["text"] != "hi" {
		t.Fatalf("message = %v", m)
	}
	pos, err = srv.Publish(ctx, "chat", []byte(`2`), &herald.PublishOptions{Key: "k1"})
	if err != nil || pos.Offset != 2 {
		t.Fatalf("Publish with key: %v, %v", pos, err)
	}
	sub.Expect(t, "message")
	again, err := srv.Publish(ctx, "chat", []byte(`2`), &herald.PublishOptions{Key: "k1"})
	if err != nil || again != pos {
		t.Fatalf("Publish repeated: %v, %v; want %v", again, err, pos)
	}
	status, body := call(t, "POST", srv.api+"/api/publish", "k", `{"channel":"chat","data":2,"key":"k1"}`)
	if status != 200 || body["offset"] != 2.0 {
		t.Fatalf("API publish with the same key: %d %v, want offset 2", status, body)
	}
	ws := dialSubscriber(t, srv.url, "other")
	if f, err := ws.Publish(9, "chat", "3", "k1"); err != nil || f.Fields()["offset"] != 3.0 {
		t.Fatalf("WebSocket publish with the key: %v, %v; want a new offset 3", f, err)
	}
	if m := sub.Expect(t, "message").Fields(); m["offset"] != 3.0 {
		t.Fatalf("message = %v, want offset 3 (nothing delivered twice)", m)
	}
}

// TestServerPublishInvalid: what the HTTP API refuses, Server.Publish
// refuses too, before publishing, with an error wrapping a *protocol.Error
// of the API's code.
func TestServerPublishInvalid(t *testing.T) {
	srv := startAPIServer(t, herald.Options{APIKey: "k", MaxMessageBytes: 1024})
	sub := dialSubscriber(t, srv.url, "chat")
	for _, tc := range []struct {
		name, channel string
		data          []byte
		key           string
		code          protocol.Code
	}{
		{"bad channel", "bad channel!", []byte(`1`), "", protocol.CodeInvalidChannel},
		{"empty channel", "", []byte(`1`), "", protocol.CodeInvalidChannel},
		{"not JSON", "chat", []byte(`hello`), "", protocol.CodeBadRequest},
		{"no data", "chat", nil, "", protocol.CodeBadRequest},
		{"too large", "chat", []byte(`"` + strings.Repeat("x", 1024) + `"`), "", protocol.CodeBadRequest},
		{"key too long", "chat", []byte(`1`), strings.Repeat("k", protocol.MaxKeyBytes+1), protocol.CodeBadRequest},
	} {
		_, err := srv.Publish(t.Context(), tc.channel, tc.data, &herald.PublishOptions{Key: tc.key})
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != tc.code || pe.Message == "" {
			t.Errorf("%s: %v, want a %s protocol error", tc.name, err, tc.code)
		}
	}
	if _, err := srv.Publish(t.Context(), "chat", []byte(`"ok"`), nil); err != nil {
		t.Fatal(err)
	}
	if m := sub.Expect(t, "message").Fields(); m["offset"] != 1.0 {
		t.Fatalf("message = %v, want offset 1: nothing invalid was published", m)
	}
}

// TestServerDisconnect: Server.Disconnect closes every connection of the
// user with the code and reason given, and refuses an empty user and a
// code that may not be sent, closing nothing.
func TestServerDisconnect(t *testing.T) {
	srv := startAPIServer(t, herald.Options{Tokens: mustJWT(t)})
	alice := bearer(token(t, jwt.MapClaims{"sub": "alice"}))
	a1, a2 := heraldtest.DialWelcome(t, srv.url, alice), heraldtest.DialWelcome(t, srv.url, alice)
	bob := heraldtest.DialWelcome(t, srv.url, bearer(token(t, jwt.MapClaims{"sub": "bob"})))

	for _, tc := range []struct {
		user string
		code protocol.CloseCode
	}{{"", 4000}, {"alice", 1006}, {"alice", 1005}, {"alice", 3000}, {"alice", 5000}} {
		n, err := srv.Disconnect(tc.user, tc.code, "no")
		var pe *protocol.Error
		if n != 0 || !errors.As(err, &pe) || pe.Code != protocol.CodeBadRequest {
			t.Errorf("Disconnect(%q, %d): %d, %v; want a bad_request error", tc.user, tc.code, n, err)
		}
	}
	n, err := srv.Disconnect("alice", 4403, "banned")
	if err != nil || n != 2 {
		t.Fatalf("Disconnect: %d, %v; want 2", n, err)
	}
	for _, c := range []*heraldtest.Conn{a1, a2} {
		if code := c.ExpectClose(t, 5*time.Second); code != 4403 {
			t.Errorf("close %d, want 4403", code)
		}
	}
	bob.Send(t, `{"type":"ping","id":1}`)
	bob.Expect(t, "pong") // bob's connection stayed open
	if n, err := srv.Disconnect("nobody", 0, ""); n != 0 || err != nil {
		t.Errorf("Disconnect of a user without connections: %d, %v", n, err)
	}
}

// dialSubscriber connects anonymously and subscribes to channel.
func dialSubscriber(t *testing.T, url, channel string) *heraldtest.Conn {
	t.Helper()
	c := heraldtest.DialWelcome(t, url, nil)
	c.Send(t, fmt.Sprintf(`{"type":"subscribe","id":1,"channel":%q}`, channel))
	c.Expect(t, "subscribed")
	return c
}
