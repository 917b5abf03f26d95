package protocol_test

import (
	"testing"

	"github.com/heraldhq/herald/protocol"
)

// BenchmarkDecodePublish decodes a publish request with a 100-byte payload,
// the server's most frequent request.
func BenchmarkDecodePublish(b *testing.B) {
	data := []byte(`{"type":"publish","id":12345,"channel":"bench:publish:3","data":{"seq":123456,"ts":1764780000123456789,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := protocol.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
