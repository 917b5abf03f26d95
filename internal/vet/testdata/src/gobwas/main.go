package main

import (
	"net/http"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

func bad(w http.ResponseWriter, r *http.Request) {
	conn, _, _, err := ws.UpgradeHTTP(r, w) // want "ws-heartbeat"
	if err != nil {
		return
	}
	for {
		msg, op, err := wsutil.ReadClientData(conn) // want "ws-read-limit"
		if err != nil {
			return
		}
		wsutil.WriteServerMessage(conn, op, msg)
	}
}
