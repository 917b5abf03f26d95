package vet

import (
	"go/ast"
	"go/token"
	"go/types"

	"golang.org/x/tools/go/analysis"
)

// Reconnect reports reconnect loops (a loop that dials a WebSocket and
// sleeps) whose delay is constant, grows exponentially with no jitter, loses
// its jitter at the cap, or whose attempt counter is reset as soon as the
// dial succeeds rather than once the connection proved stable. Each of
// these brings every client back at the same moment after an outage.
var Reconnect = &analysis.Analyzer{
	Name: "reconnect",
	Doc:  "report reconnect loops without backoff, without jitter, or that reset their attempt counter on open",
	Run:  runReconnect,
}

func runReconnect(pass *analysis.Pass) (any, error) {
	funcs := map[types.Object]*ast.FuncDecl{}
	for _, f := range pass.Files {
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
				funcs[pass.TypesInfo.Defs[fd.Name]] = fd
			}
		}
	}
	for _, fd := range funcs {
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			var body *ast.BlockStmt
			switch l := n.(type) {
			case *ast.ForStmt:
				body = l.Body
			case *ast.RangeStmt:
				body = l.Body
			default:
				return true
			}
			checkLoop(pass, funcs, fd, body)
			return true
		})
	}
	return nil, nil
}

// checkLoop checks one loop that dials and sleeps.
func checkLoop(pass *analysis.Pass, funcs map[types.Object]*ast.FuncDecl, fd *ast.FuncDecl, body *ast.BlockStmt) {
	info := pass.TypesInfo
	var dial *ast.CallExpr
	var delay ast.Expr
	calls(body, func(c *ast.CallExpr) {
		fn := callee(info, c)
		if dial == nil && library(fn) != "" && (fn.Name() == "Dial" || fn.Name() == "DialContext") {
			dial = c
		}
		if delay == nil && len(c.Args) == 1 && (is(fn, "time", "Sleep", "After", "NewTimer") || is(fn, "time", "Reset")) {
			delay = c.Args[0]
		}
	})
	if dial == nil || delay == nil {
		return
	}
	if constantDelay(info, fd, delay) {
		report(pass, delay.Pos(), "ws-reconnect", "reconnect with a constant delay (after an outage every client comes back at the same moment); "+
			"grow the delay exponentially up to a cap and draw it at random below that (full jitter)")
	} else {
		scope := []ast.Node{fd.Body}
		calls(fd.Body, func(c *ast.CallExpr) {
			if h := funcs[objOf(info, c.Fun)]; h != nil && h != fd {
				scope = append(scope, h.Body)
			}
		})
		exp, rnd := false, false
		for _, s := range scope {
			exp = exp || grows(info, s)
			rnd = rnd || random(info, s)
		}
		switch {
		case exp && !rnd:
			report(pass, delay.Pos(), "ws-reconnect", "exponential backoff without jitter (clients dropped together retry together, at every step); "+
				"draw the delay at random between 0 and the backoff (full jitter)")
		case exp:
			for _, s := range scope {
				if pos := jitterCapped(info, s); pos.IsValid() {
					report(pass, pos, "ws-reconnect", "jitter added before the cap (once the backoff reaches the cap every client waits exactly the cap); "+
						"cap first, then draw the delay at random below the capped value")
				}
			}
		}
	}
	if pos := earlyReset(info, fd, body, dial); pos.IsValid() {
		report(pass, pos, "ws-reconnect", "attempt counter reset as soon as the dial succeeds (a server that accepts then drops keeps clients at the shortest delay); "+
			"reset it only after the connection proved stable, e.g. after its first message or a minute up")
	}
}

// constantDelay reports whether d is a constant, or a variable of fd that is
// given a constant once and never changed.
func constantDelay(info *types.Info, fd *ast.FuncDecl, d ast.Expr) bool {
	if tv := info.Types[d]; tv.Value != nil {
		return true
	}
	id, ok := ast.Unparen(d).(*ast.Ident)
	if !ok {
		return false
	}
	v, ok := info.ObjectOf(id).(*types.Var)
	if !ok || v.Parent() == v.Pkg().Scope() {
		return false
	}
	assigns, constant := 0, true
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		switch s := n.(type) {
		case *ast.AssignStmt:
			for i, l := range s.Lhs {
				if objOf(info, l) == v {
					assigns++
					if len(s.Rhs) != len(s.Lhs) || info.Types[s.Rhs[i]].Value == nil || s.Tok != token.DEFINE && s.Tok != token.ASSIGN {
						constant = false
					}
				}
			}
		case *ast.IncDecStmt:
			if objOf(info, s.X) == v {
				constant = false
			}
		case *ast.ValueSpec:
			for i, name := range s.Names {
				if info.Defs[name] == v {
					assigns++
					if i >= len(s.Values) || info.Types[s.Values[i]].Value == nil {
						constant = false
					}
				}
			}
		case *ast.UnaryExpr:
			if s.Op == token.AND && objOf(info, s.X) == v {
				constant = false // may be changed through the pointer
			}
		}
		return true
	})
	return assigns == 1 && constant
}

// grows reports whether n computes an exponential: a shift, a doubling
// (*= or * 2), or math.Pow.
func grows(info *types.Info, n ast.Node) bool {
	found := false
	ast.Inspect(n, func(n ast.Node) bool {
		switch e := n.(type) {
		case *ast.BinaryExpr:
			if e.Op == token.SHL || e.Op == token.MUL && (isConst(info, e.X, 2) || isConst(info, e.Y, 2)) {
				found = true
			}
		case *ast.AssignStmt:
			if e.Tok == token.MUL_ASSIGN || e.Tok == token.SHL_ASSIGN {
				found = true
			}
		case *ast.CallExpr:
			if is(callee(info, e), "math", "Pow") {
				found = true
			}
		}
		return !found
	})
	return found
}

// random reports whether n draws a random number.
func random(info *types.Info, n ast.Node) bool {
	found := false
	calls(n, func(c *ast.CallExpr) {
		if fn := callee(info, c); fn != nil && fn.Pkg() != nil {
			switch fn.Pkg().Path() {
			case "math/rand", "math/rand/v2", "crypto/rand":
				found = true
			}
		}
	})
	return found
}

// jitterCapped returns the position of a cap applied after jitter: min(...)
// over an argument that draws a random number, or v = min(v, cap) / if v >
// cap { v = cap } after v was given a random value. It returns NoPos when
// there is none.
func jitterCapped(info *types.Info, n ast.Node) token.Pos {
	jittered := map[types.Object]token.Pos{}
	var at token.Pos
	ast.Inspect(n, func(n ast.Node) bool {
		if at.IsValid() {
			return false
		}
		switch s := n.(type) {
		case *ast.CallExpr:
			if isMin(info, s) {
				for _, a := range s.Args {
					if random(info, a) {
						at = s.Pos()
					}
					if p, ok := jittered[objOf(info, a)]; ok && p < s.Pos() {
						at = s.Pos()
					}
				}
			}
		case *ast.AssignStmt:
			for i, l := range s.Lhs {
				if i < len(s.Rhs) && random(info, s.Rhs[i]) {
					if o := objOf(info, l); o != nil {
						jittered[o] = s.Pos()
					}
				}
			}
		case *ast.IfStmt:
			if c, ok := s.Cond.(*ast.BinaryExpr); ok && (c.Op == token.GTR || c.Op == token.GEQ) {
				if p, ok := jittered[objOf(info, c.X)]; ok && p < s.Pos() && assigns(info, s.Body, objOf(info, c.X)) {
					at = s.Pos()
				}
			}
		}
		return true
	})
	return at
}

func isMin(info *types.Info, c *ast.CallExpr) bool {
	if id, ok := ast.Unparen(c.Fun).(*ast.Ident); ok {
		if b, ok := info.Uses[id].(*types.Builtin); ok && b.Name() == "min" {
			return true
		}
	}
	return is(callee(info, c), "math", "Min")
}

func assigns(info *types.Info, b *ast.BlockStmt, v types.Object) bool {
	for _, st := range b.List {
		if a, ok := st.(*ast.AssignStmt); ok && len(a.Lhs) == 1 && objOf(info, a.Lhs[0]) == v {
			return true
		}
	}
	return false
}

// earlyReset returns the position of "n = 0" on a counter of fd (a variable
// incremented somewhere in fd) placed after the dial in the loop body with
// nothing in between that shows the connection held: a read, time.Since or
// a time difference. It returns NoPos when there is none.
func earlyReset(info *types.Info, fd *ast.FuncDecl, body *ast.BlockStmt, dial *ast.CallExpr) token.Pos {
	counters := map[types.Object]bool{}
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		switch s := n.(type) {
		case *ast.IncDecStmt:
			if s.Tok == token.INC {
				counters[objOf(info, s.X)] = true
			}
		case *ast.AssignStmt:
			if s.Tok == token.ADD_ASSIGN {
				counters[objOf(info, s.Lhs[0])] = true
			}
		}
		return true
	})
	var proof, reset token.Pos
	ast.Inspect(body, func(n ast.Node) bool {
		if n == nil || n.Pos() <= dial.End() {
			return true
		}
		switch s := n.(type) {
		case *ast.CallExpr:
			fn := callee(info, s)
			if fn != nil && (is(fn, "time", "Since", "Sub") || readCall(fn)) && !proof.IsValid() {
				proof = s.Pos()
			}
		case *ast.AssignStmt:
			if len(s.Lhs) == 1 && len(s.Rhs) == 1 && isConst(info, s.Rhs[0], 0) && counters[objOf(info, s.Lhs[0])] && !reset.IsValid() {
				reset = s.Pos()
			}
		}
		return true
	})
	if reset.IsValid() && (!proof.IsValid() || reset < proof) {
		return reset
	}
	return token.NoPos
}

// readCall reports whether fn reads a message from a WebSocket connection,
// or is a function of the package that does.
func readCall(fn *types.Func) bool {
	switch {
	case is(fn, gorilla, "ReadMessage", "NextReader", "ReadJSON"),
		is(fn, coder, "Read", "Reader"), is(fn, nhooyr, "Read", "Reader"), is(fn, coderJSON, "Read"),
		fn.Pkg() != nil && fn.Pkg().Path() == wsutil:
		return true
	}
	return false
}
