package main

import (
	"net/http"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

func good(w http.ResponseWriter, r *http.Request) {
	conn, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	go func() {
		for range time.Tick(30 * time.Second) {
			wsutil.WriteServerMessage(conn, ws.OpPing, nil)
		}
	}()
	conn.SetReadDeadline(time.Now().Add(time.Minute))
}
