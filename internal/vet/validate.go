package vet

import (
	"go/ast"
	"go/constant"
	"regexp"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/ast/inspector"
)

// Validate reports incoming messages used without validation, in packages
// that use a WebSocket library: JSON decoded with its error ignored, and a
// switch on a message's type field with no default, which silently drops
// the types it does not know.
var Validate = &analysis.Analyzer{
	Name: "validate",
	Doc:  "report messages decoded without error handling and type switches with no default",
	Run:  runValidate,
}

// typeField matches the field names a message's kind goes by.
var typeField = regexp.MustCompile(`^(?i:type|kind|op|action|event|cmd|command|method)$`)

func runValidate(pass *analysis.Pass) (any, error) {
	if !usesWebSocket(pass.Pkg) {
		return nil, nil
	}
	in := inspector.New(pass.Files)
	for c := range in.Root().Preorder((*ast.CallExpr)(nil), (*ast.SwitchStmt)(nil)) {
		switch n := c.Node().(type) {
		case *ast.CallExpr:
			fn := callee(pass.TypesInfo, n)
			if !is(fn, "encoding/json", "Unmarshal", "Decode") && !is(fn, gorilla, "ReadJSON") && !is(fn, coderJSON, "Read") {
				continue
			}
			if errIgnored(c.Parent().Node(), n) {
				report(pass, n.Pos(), "ws-validate", "decoding error ignored (a malformed message is used as a zero value); "+
					"check the error and answer or close with a policy-violation code")
			}
		case *ast.SwitchStmt:
			if stringTypeSwitch(pass, n) {
				report(pass, n.Pos(), "ws-validate", "switch on the message type with no default (unknown types are silently ignored); "+
					"add a default that logs or answers with an error naming the unknown type")
			}
		}
	}
	return nil, nil
}

// errIgnored reports whether the error call returns is dropped: the call is
// a statement of its own, or its error is assigned to the blank identifier.
func errIgnored(parent ast.Node, call *ast.CallExpr) bool {
	switch p := parent.(type) {
	case *ast.ExprStmt:
		return true
	case *ast.AssignStmt:
		if len(p.Rhs) != 1 || p.Rhs[0] != call {
			return false
		}
		last, ok := p.Lhs[len(p.Lhs)-1].(*ast.Ident)
		return ok && last.Name == "_"
	}
	return false
}

// stringTypeSwitch reports whether s switches on a field like m.Type with
// constant string cases and has no default.
func stringTypeSwitch(pass *analysis.Pass, s *ast.SwitchStmt) bool {
	sel, ok := ast.Unparen(s.Tag).(*ast.SelectorExpr)
	if !ok || !typeField.MatchString(sel.Sel.Name) {
		return false
	}
	cases := 0
	for _, st := range s.Body.List {
		cc := st.(*ast.CaseClause)
		if cc.List == nil {
			return false // default
		}
		for _, e := range cc.List {
			tv := pass.TypesInfo.Types[e]
			if tv.Value == nil || tv.Value.Kind() != constant.String {
				return false
			}
			cases++
		}
	}
	return cases > 0
}
