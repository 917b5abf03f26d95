// Package ws is a stub of gobwas/ws's API for the tests.
package ws

import (
	"io"
	"net"
	"net/http"
)

type OpCode byte

const OpPing OpCode = 0x9

type Handshake struct{}

func UpgradeHTTP(r *http.Request, w http.ResponseWriter) (net.Conn, any, Handshake, error) {
	return nil, nil, Handshake{}, nil
}
func Upgrade(conn io.ReadWriter) (Handshake, error) { return Handshake{}, nil }
