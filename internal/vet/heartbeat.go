package vet

import (
	"go/ast"
	"go/constant"
	"go/types"

	"golang.org/x/tools/go/analysis"
)

// Heartbeat reports WebSocket connections in a package that neither sends
// pings nor sets a read deadline, so a peer that vanished without a close
// (a dead NAT entry, a pulled cable) is never noticed.
var Heartbeat = &analysis.Analyzer{
	Name: "heartbeat",
	Doc:  "report WebSocket connections with no heartbeat (no ping on a timer and no read deadline extended by a pong)",
	Run:  runHeartbeat,
}

const heartbeatMsg = "connection with no heartbeat (a peer that vanishes without a close is never noticed); "

var heartbeatFix = map[string]string{
	"gorilla": "send websocket.PingMessage on a ticker and extend a SetReadDeadline from the pong handler",
	"coder":   "call Conn.Ping on a ticker with a timeout, or read with a context deadline",
	"gobwas":  "write ws.OpPing frames on a ticker and set a read deadline that each pong extends",
}

func runHeartbeat(pass *analysis.Pass) (any, error) {
	var dials []*ast.CallExpr
	beat := map[string]bool{}
	for _, f := range pass.Files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			deadlineInFunc, coderReadInFunc := false, false
			calls(fd.Body, func(c *ast.CallExpr) {
				fn := callee(pass.TypesInfo, c)
				if library(fn) != "" {
					dials = append(dials, c)
				}
				switch {
				case isMethod(fn, "SetReadDeadline", "SetDeadline"):
					beat["gorilla"], beat["gobwas"] = true, true
				case is(fn, gorilla, "WriteMessage", "WriteControl") && len(c.Args) > 0 && isConst(pass.TypesInfo, c.Args[0], 9):
					beat["gorilla"] = true
				case is(fn, coder, "Ping"), is(fn, nhooyr, "Ping"):
					beat["coder"] = true
				case is(fn, coder, "Read", "Reader"), is(fn, nhooyr, "Read", "Reader"), is(fn, coderJSON, "Read"):
					coderReadInFunc = true
				case is(fn, "context", "WithTimeout", "WithDeadline"):
					deadlineInFunc = true
				}
			})
			if deadlineInFunc && coderReadInFunc {
				beat["coder"] = true // every read has a deadline
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				if id, ok := n.(*ast.Ident); ok {
					if obj := pass.TypesInfo.Uses[id]; obj != nil && obj.Pkg() != nil && obj.Pkg().Path() == gobwas {
						switch obj.Name() {
						case "OpPing", "NewPingFrame", "PingFrame", "CompiledPing":
							beat["gobwas"] = true
						}
					}
				}
				return true
			})
		}
	}
	for _, c := range dials {
		lib := library(callee(pass.TypesInfo, c))
		if !beat[lib] {
			report(pass, c.Pos(), "ws-heartbeat", heartbeatMsg+heartbeatFix[lib])
		}
	}
	return nil, nil
}

// isConst reports whether e is the integer constant v.
func isConst(info *types.Info, e ast.Expr, v int64) bool {
	tv, ok := info.Types[e]
	if !ok || tv.Value == nil || tv.Value.Kind() != constant.Int {
		return false
	}
	n, exact := constant.Int64Val(tv.Value)
	return exact && n == v
}
