package vet

import (
	"go/ast"
	"go/types"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/types/typeutil"
)

// OwnPort reports a program that serves WebSocket on a port of its own next
// to an HTTP server. Two ports mean two origins, two TLS setups, two holes
// in every firewall and proxy, and cookies that do not follow; mount the
// WebSocket handler on the HTTP server's mux instead. A second server whose
// handler is only Prometheus' promhttp (a metrics port) does not count.
var OwnPort = &analysis.Analyzer{
	Name: "ownport",
	Doc:  "report a WebSocket server on a port of its own next to an HTTP server",
	Run:  runOwnPort,
}

// handler kinds
const (
	kindHTTP    = iota // serves something other than WebSocket, or unknown
	kindWS             // serves only WebSocket
	kindMetrics        // serves only metrics
)

type ownPort struct {
	pass    *analysis.Pass
	wsFuncs map[types.Object]bool
	routes  map[types.Object][]ast.Expr // mux variable (nil: http.DefaultServeMux) -> handlers registered on it
	values  map[types.Object]ast.Expr   // variable -> the value it is assigned
}

func runOwnPort(pass *analysis.Pass) (any, error) {
	o := &ownPort{pass: pass, wsFuncs: wsFuncs(pass), routes: map[types.Object][]ast.Expr{}, values: map[types.Object]ast.Expr{}}
	type start struct {
		call *ast.CallExpr
		kind int
	}
	var starts []start
	var servers []*ast.CallExpr
	for _, f := range pass.Files {
		o.recordValues(f)
		calls(f, func(c *ast.CallExpr) {
			fn := callee(pass.TypesInfo, c)
			switch {
			case is(fn, "net/http", "Handle", "HandleFunc") && len(c.Args) == 2:
				var mux types.Object
				if fn.Signature().Recv() != nil {
					mux = objOf(pass.TypesInfo, c.Fun.(*ast.SelectorExpr).X)
				}
				o.routes[mux] = append(o.routes[mux], c.Args[1])
			case is(fn, "net/http", "ListenAndServe", "ListenAndServeTLS", "Serve", "ServeTLS"):
				servers = append(servers, c)
			}
		})
	}
	for _, c := range servers {
		starts = append(starts, start{c, o.serverKind(c)})
	}
	ws, other := 0, 0
	for _, s := range starts {
		switch s.kind {
		case kindWS:
			ws++
		case kindHTTP:
			other++
		}
	}
	if ws == 0 || other == 0 {
		return nil, nil
	}
	for _, s := range starts {
		if s.kind == kindWS {
			report(pass, s.call.Pos(), "ws-own-port", "WebSocket served on a port of its own next to an HTTP server "+
				"(a second origin, TLS setup and firewall or proxy rule, and cookies that do not follow); "+
				"mount the WebSocket handler on the HTTP server's mux and serve both on one port")
		}
	}
	return nil, nil
}

// serverKind classifies what a server start serves.
func (o *ownPort) serverKind(c *ast.CallExpr) int {
	info := o.pass.TypesInfo
	fn := callee(info, c)
	if fn.Signature().Recv() == nil { // http.ListenAndServe(addr, h) and friends
		i := 1
		if fn.Name() == "ListenAndServeTLS" {
			i = 3
		}
		return o.handlerKind(c.Args[i])
	}
	sel, ok := ast.Unparen(c.Fun).(*ast.SelectorExpr)
	if !ok {
		return kindHTTP
	}
	lit := o.serverLiteral(sel.X)
	if lit == nil {
		return kindHTTP
	}
	for _, e := range lit.Elts {
		if kv, ok := e.(*ast.KeyValueExpr); ok {
			if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Handler" {
				return o.handlerKind(kv.Value)
			}
		}
	}
	return o.muxKind(nil)
}

// serverLiteral finds the http.Server composite literal that e is, or that
// the variable e names was last given in the package.
func (o *ownPort) serverLiteral(e ast.Expr) *ast.CompositeLit {
	for range 2 {
		e = ast.Unparen(e)
		if u, ok := e.(*ast.UnaryExpr); ok {
			e = u.X
		}
		if lit, ok := e.(*ast.CompositeLit); ok {
			return lit
		}
		id, ok := e.(*ast.Ident)
		if !ok || o.values[o.pass.TypesInfo.ObjectOf(id)] == nil {
			return nil
		}
		e = o.values[o.pass.TypesInfo.ObjectOf(id)]
	}
	return nil
}

// recordValues notes the value each variable of n is assigned.
func (o *ownPort) recordValues(n ast.Node) {
	info := o.pass.TypesInfo
	ast.Inspect(n, func(n ast.Node) bool {
		switch s := n.(type) {
		case *ast.AssignStmt:
			if len(s.Lhs) == len(s.Rhs) {
				for i, l := range s.Lhs {
					if obj := objOf(info, l); obj != nil {
						o.values[obj] = s.Rhs[i]
					}
				}
			}
		case *ast.ValueSpec:
			if len(s.Names) == len(s.Values) {
				for i, name := range s.Names {
					o.values[info.Defs[name]] = s.Values[i]
				}
			}
		}
		return true
	})
}

// handlerKind classifies an http.Handler expression.
func (o *ownPort) handlerKind(h ast.Expr) int {
	info := o.pass.TypesInfo
	h = ast.Unparen(h)
	if tv := info.Types[h]; tv.IsNil() {
		return o.muxKind(nil)
	}
	if c, ok := h.(*ast.CallExpr); ok {
		fn := callee(info, c)
		switch {
		case fn != nil && fn.Pkg() != nil && fn.Pkg().Path() == "github.com/prometheus/client_golang/prometheus/promhttp":
			return kindMetrics
		case len(c.Args) == 1 && info.Types[c.Fun].IsType(): // http.HandlerFunc(f)
			return o.handlerKind(c.Args[0])
		}
	}
	if lit, ok := h.(*ast.FuncLit); ok {
		if o.upgrades(lit.Body) {
			return kindWS
		}
		return kindHTTP
	}
	if obj := objOf(info, h); obj != nil {
		if o.wsFuncs[obj] {
			return kindWS
		}
		if _, ok := o.routes[obj]; ok {
			return o.muxKind(obj)
		}
	}
	t := info.TypeOf(h)
	if t == nil {
		return kindHTTP
	}
	if isNamed(t, herald, "Server") {
		return kindWS
	}
	if m, _, _ := types.LookupFieldOrMethod(t, true, o.pass.Pkg, "ServeHTTP"); m != nil && o.wsFuncs[m] {
		return kindWS
	}
	return kindHTTP
}

// muxKind classifies a mux by the handlers registered on it.
func (o *ownPort) muxKind(mux types.Object) int {
	hs := o.routes[mux]
	if len(hs) == 0 {
		return kindHTTP
	}
	for _, h := range hs {
		if o.handlerKind(h) != kindWS {
			return kindHTTP
		}
	}
	return kindWS
}

func (o *ownPort) upgrades(n ast.Node) bool {
	found := false
	calls(n, func(c *ast.CallExpr) {
		fn := callee(o.pass.TypesInfo, c)
		if (library(fn) != "" && fn.Name() != "Dial" && fn.Name() != "DialContext") || o.wsFuncs[fn] {
			found = true
		}
	})
	return found
}

// wsFuncs returns the functions and methods of the package that accept a
// WebSocket connection, directly or through another such function.
func wsFuncs(pass *analysis.Pass) map[types.Object]bool {
	decls := map[types.Object]*ast.FuncDecl{}
	for _, f := range pass.Files {
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
				decls[pass.TypesInfo.Defs[fd.Name]] = fd
			}
		}
	}
	ws := map[types.Object]bool{}
	for changed := true; changed; {
		changed = false
		for obj, fd := range decls {
			if ws[obj] {
				continue
			}
			calls(fd.Body, func(c *ast.CallExpr) {
				fn := typeutil.Callee(pass.TypesInfo, c)
				f, _ := fn.(*types.Func)
				if (f != nil && library(f) != "" && f.Name() != "Dial" && f.Name() != "DialContext") || (fn != nil && ws[fn]) {
					if !ws[obj] {
						ws[obj], changed = true, true
					}
				}
			})
		}
	}
	return ws
}

func isNamed(t types.Type, path, name string) bool {
	if p, ok := t.(*types.Pointer); ok {
		t = p.Elem()
	}
	n, ok := t.(*types.Named)
	return ok && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == path && n.Obj().Name() == name
}
