// Package vet reviews WebSocket code for the pitfalls that Herald's
// promises exist to avoid: a WebSocket server on a port of its own, no
// heartbeat, unbounded reads, reconnect loops that stampede, messages used
// without validation and concurrent writers. Each rule is a
// golang.org/x/tools/go/analysis Analyzer, run by "herald vet" (or by
// "go vet -vettool=$(which herald)"); docs/VET.md lists them with a wrong
// and a right example each.
//
// A finding is silenced on its line, or on the line above, by a comment
//
//	//herald:vet-ignore RULE-ID reason
//
// The reason is required: an ignore comment without one silences nothing.
// Test files are not reviewed: the peers they run are minimal or hostile on
// purpose.
package vet

import (
	"go/ast"
	"go/token"
	"go/types"
	"strings"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/types/typeutil"
)

// Analyzers returns every rule, in the order docs/VET.md lists them.
func Analyzers() []*analysis.Analyzer {
	return []*analysis.Analyzer{OwnPort, Heartbeat, ReadLimit, Reconnect, Validate, Writers}
}

// Import paths of the WebSocket libraries the rules know.
const (
	gorilla   = "github.com/gorilla/websocket"
	coder     = "github.com/coder/websocket"
	nhooyr    = "nhooyr.io/websocket"
	coderJSON = "github.com/coder/websocket/wsjson"
	gobwas    = "github.com/gobwas/ws"
	wsutil    = "github.com/gobwas/ws/wsutil"
	herald    = "github.com/heraldhq/herald"
)

// IgnoreDirective starts a comment that silences one rule on its line or
// the next one.
const IgnoreDirective = "herald:vet-ignore"

// report reports a finding of rule id at pos unless an ignore comment with
// a reason silences it. The message reads "id: what (why); how to fix".
func report(pass *analysis.Pass, pos token.Pos, id, msg string) {
	if strings.HasSuffix(pass.Fset.File(pos).Name(), "_test.go") || ignored(pass, pos, id) {
		return
	}
	pass.Report(analysis.Diagnostic{Pos: pos, Category: id, Message: id + ": " + msg})
}

// ignored reports whether a "//herald:vet-ignore id reason" comment sits on
// pos's line or the line above it.
func ignored(pass *analysis.Pass, pos token.Pos, id string) bool {
	tf := pass.Fset.File(pos)
	if tf == nil {
		return false
	}
	line := tf.Line(pos)
	for _, f := range pass.Files {
		if pass.Fset.File(f.Pos()) != tf {
			continue
		}
		for _, cg := range f.Comments {
			for _, c := range cg.List {
				l := tf.Line(c.Slash)
				if (l == line || l == line-1) && ignoresRule(c.Text, id) {
					return true
				}
			}
		}
	}
	return false
}

// ignoresRule reports whether comment text is an ignore directive for id
// that gives a reason.
func ignoresRule(text, id string) bool {
	text = strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(text, "//"), "/*"))
	rest, ok := strings.CutPrefix(text, IgnoreDirective)
	if !ok {
		return false
	}
	fields := strings.Fields(rest)
	return len(fields) >= 2 && fields[0] == id
}

// callee returns the function or method a call invokes, or nil.
func callee(info *types.Info, call *ast.CallExpr) *types.Func {
	fn, _ := typeutil.Callee(info, call).(*types.Func)
	return fn
}

// is reports whether fn is declared in package path with one of names (a
// function or a method of any type of that package).
func is(fn *types.Func, path string, names ...string) bool {
	if fn == nil || fn.Pkg() == nil || fn.Pkg().Path() != path {
		return false
	}
	for _, n := range names {
		if fn.Name() == n {
			return true
		}
	}
	return false
}

// isMethod reports whether fn is a method named one of names.
func isMethod(fn *types.Func, names ...string) bool {
	if fn == nil || fn.Signature().Recv() == nil {
		return false
	}
	for _, n := range names {
		if fn.Name() == n {
			return true
		}
	}
	return false
}

// library names the WebSocket library a connection-creating call belongs
// to ("gorilla", "coder", "gobwas"), or "" for any other call.
func library(fn *types.Func) string {
	switch {
	case is(fn, gorilla, "Upgrade", "Dial", "DialContext"):
		return "gorilla"
	case is(fn, coder, "Accept", "Dial"), is(fn, nhooyr, "Accept", "Dial"):
		return "coder"
	case is(fn, gobwas, "Upgrade", "UpgradeHTTP", "Dial"):
		return "gobwas"
	}
	return ""
}

// usesWebSocket reports whether the package imports a WebSocket library.
func usesWebSocket(pkg *types.Package) bool {
	for _, imp := range pkg.Imports() {
		switch imp.Path() {
		case gorilla, coder, nhooyr, coderJSON, gobwas, wsutil, herald, herald + "/client":
			return true
		}
	}
	return false
}

// calls walks every call in root, nested function literals included.
func calls(root ast.Node, f func(*ast.CallExpr)) {
	ast.Inspect(root, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			f(c)
		}
		return true
	})
}

// objOf returns the variable or field an expression names (x, or the field
// in a.b.x), or nil.
func objOf(info *types.Info, e ast.Expr) types.Object {
	switch e := ast.Unparen(e).(type) {
	case *ast.Ident:
		return info.ObjectOf(e)
	case *ast.SelectorExpr:
		return info.ObjectOf(e.Sel)
	case *ast.StarExpr:
		return objOf(info, e.X)
	}
	return nil
}
