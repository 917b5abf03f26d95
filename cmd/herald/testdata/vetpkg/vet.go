// Package vetpkg holds one finding for herald vet's test.
package vetpkg

import (
	"encoding/json"

	_ "github.com/gobwas/ws"
)

// Decode drops the decoding error.
func Decode(b []byte) (m map[string]any) {
	//
	json.Unmarshal(b, &m)
	return m
}
