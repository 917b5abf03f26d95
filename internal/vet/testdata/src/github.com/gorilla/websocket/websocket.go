// Package websocket is a stub of gorilla/websocket's API for the tests.
package websocket

import (
	"net/http"
	"time"
)

const (
	TextMessage = 1
	PingMessage = 9
)

type Conn struct{}
type Upgrader struct{ ReadBufferSize, WriteBufferSize int }
type Dialer struct{}

var DefaultDialer = &Dialer{}

func (*Upgrader) Upgrade(w http.ResponseWriter, r *http.Request, h http.Header) (*Conn, error) {
	return nil, nil
}
func (*Dialer) Dial(url string, h http.Header) (*Conn, *http.Response, error) { return nil, nil, nil }
func (*Conn) ReadMessage() (int, []byte, error)                               { return 0, nil, nil }
func (*Conn) ReadJSON(v any) error                                            { return nil }
func (*Conn) WriteMessage(t int, b []byte) error                              { return nil }
func (*Conn) WriteJSON(v any) error                                           { return nil }
func (*Conn) WriteControl(t int, b []byte, d time.Time) error                 { return nil }
func (*Conn) SetReadLimit(n int64)                                            {}
func (*Conn) SetReadDeadline(t time.Time) error                               { return nil }
func (*Conn) SetWriteDeadline(t time.Time) error                              { return nil }
func (*Conn) SetPongHandler(h func(string) error)                             {}
func (*Conn) Close() error                                                    { return nil }
