package vet

import (
	"go/ast"
	"go/types"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/ast/inspector"
)

// Writers reports a gorilla/websocket connection written from more than one
// goroutine of a function without a lock. gorilla/websocket supports one
// concurrent writer; WriteControl and Close are the exceptions and are not
// counted.
var Writers = &analysis.Analyzer{
	Name: "writers",
	Doc:  "report concurrent writers on a gorilla/websocket connection without a lock",
	Run:  runWriters,
}

// write is one write call and the goroutine it runs on.
type write struct {
	call    *ast.CallExpr
	g       ast.Node // the go statement's function literal, or nil for the function's own goroutine
	many    bool     // g is started in a loop, so it runs several times at once
	guarded bool     // a Lock call precedes the write in its function
}

func runWriters(pass *analysis.Pass) (any, error) {
	for _, f := range pass.Files {
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
				checkWriters(pass, fd)
			}
		}
	}
	return nil, nil
}

func checkWriters(pass *analysis.Pass, fd *ast.FuncDecl) {
	byConn := map[types.Object][]write{}
	var order []types.Object
	cur := inspector.New([]*ast.File{{Decls: []ast.Decl{fd}}}).Root()
	for c := range cur.Preorder((*ast.CallExpr)(nil)) {
		call := c.Node().(*ast.CallExpr)
		fn := callee(pass.TypesInfo, call)
		if !is(fn, gorilla, "WriteMessage", "WriteJSON", "NextWriter", "WritePreparedMessage") {
			continue
		}
		sel, ok := ast.Unparen(call.Fun).(*ast.SelectorExpr)
		if !ok {
			continue
		}
		obj := objOf(pass.TypesInfo, sel.X)
		if obj == nil {
			continue
		}
		w := write{call: call}
		var body *ast.BlockStmt // the innermost function around the call
		for a := range c.Enclosing() {
			switch n := a.Node().(type) {
			case *ast.FuncLit:
				if body == nil {
					body = n.Body
				}
				if w.g == nil {
					if g, ok := a.Parent().Node().(*ast.CallExpr); ok && g.Fun == n {
						if _, ok := a.Parent().Parent().Node().(*ast.GoStmt); ok {
							w.g = n
						}
					}
				}
			case *ast.FuncDecl:
				if body == nil {
					body = n.Body
				}
			case *ast.ForStmt, *ast.RangeStmt:
				if w.g != nil && !w.many && n.Pos() < w.g.Pos() {
					w.many = true
				}
			}
		}
		w.guarded = lockedBefore(pass.TypesInfo, body, call)
		if byConn[obj] == nil {
			order = append(order, obj)
		}
		byConn[obj] = append(byConn[obj], w)
	}
	for _, obj := range order {
		ws := byConn[obj]
		goroutines := map[ast.Node]bool{}
		allGuarded, many := true, false
		for _, w := range ws {
			goroutines[w.g] = true
			allGuarded = allGuarded && w.guarded
			many = many || w.many
		}
		if allGuarded || (len(goroutines) < 2 && !many) {
			continue
		}
		for _, w := range ws {
			if w.g != nil && !w.guarded {
				report(pass, w.call.Pos(), "ws-concurrent-write", "connection written from several goroutines without a lock "+
					"(gorilla/websocket allows one concurrent writer; concurrent writes corrupt frames or panic); "+
					"send through one writer goroutine, hold a sync.Mutex around every write, or use WriteControl for pings")
				break
			}
		}
	}
}

// lockedBefore reports whether body calls a Lock method of package sync
// before call.
func lockedBefore(info *types.Info, body *ast.BlockStmt, call *ast.CallExpr) bool {
	if body == nil {
		return false
	}
	found := false
	calls(body, func(c *ast.CallExpr) {
		if c.Pos() < call.Pos() && is(callee(info, c), "sync", "Lock") {
			found = true
		}
	})
	return found
}
