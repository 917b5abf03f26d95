package vet_test

import (
	"testing"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/analysis/analysistest"

	"github.com/heraldhq/herald/internal/vet"
)

// all runs every rule in one pass, so a fixture states every finding it
// must produce and a finding no fixture expects fails the test.
var all = &analysis.Analyzer{
	Name: "all",
	Doc:  "every herald vet rule",
	Run: func(pass *analysis.Pass) (any, error) {
		for _, a := range vet.Analyzers() {
			if _, err := a.Run(pass); err != nil {
				return nil, err
			}
		}
		return nil, nil
	},
}

func TestAnalyzers(t *testing.T) {
	analysistest.Run(t, analysistest.TestData(), all,
		"ownport/split", "ownport/onemux", "gorillaecho", "gorillachat", "coderecho", "coderchat",
		"gobwas", "gobwasbeat", "reconnect", "validate", "writers")
}

func TestAnalyzersValid(t *testing.T) {
	if err := analysis.Validate(vet.Analyzers()); err != nil {
		t.Fatal(err)
	}
}
