package vet

import (
	"go/ast"

	"golang.org/x/tools/go/analysis"
)

// ReadLimit reports reads with no message size limit where the library has
// none by default: gorilla/websocket connections on which the package never
// calls SetReadLimit, and gobwas/ws wsutil helpers that read a whole
// message into memory. (coder/websocket reads at most 32 KiB by default and
// Node's ws 100 MiB, so neither is reported.)
var ReadLimit = &analysis.Analyzer{
	Name: "readlimit",
	Doc:  "report WebSocket reads with no message size limit",
	Run:  runReadLimit,
}

func runReadLimit(pass *analysis.Pass) (any, error) {
	var conns []*ast.CallExpr
	limited := false
	for _, f := range pass.Files {
		calls(f, func(c *ast.CallExpr) {
			fn := callee(pass.TypesInfo, c)
			switch {
			case library(fn) == "gorilla":
				conns = append(conns, c)
			case is(fn, gorilla, "SetReadLimit"):
				limited = true
			case is(fn, wsutil, "ReadClientData", "ReadClientText", "ReadClientBinary", "ReadClientMessage",
				"ReadServerData", "ReadServerText", "ReadServerBinary", "ReadServerMessage", "ReadMessage", "ReadData"):
				report(pass, c.Pos(), "ws-read-limit", "message read with no size limit (a peer can make the process allocate without bound); "+
					"read frames with ws.ReadHeader and refuse a Length over your limit, or wrap the conn in an io.LimitedReader per message")
			}
		})
	}
	if limited {
		return nil, nil
	}
	for _, c := range conns {
		report(pass, c.Pos(), "ws-read-limit", "connection with no read limit (gorilla/websocket accepts messages of any size by default, so a peer can exhaust memory); "+
			"call conn.SetReadLimit(max) before the first read")
	}
	return nil, nil
}
