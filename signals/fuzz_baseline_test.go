package signals

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeBaseline decodes any baseline: an error, or a baseline whose
// digest survives a round trip (the digest a release signs).
func FuzzDecodeBaseline(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":"1","features":[]}`))
	f.Add([]byte(`{"schemaVersion":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBaseline(data)
		if err != nil {
			return
		}
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := DecodeBaseline(enc)
		if err != nil {
			t.Fatalf("a decoded baseline does not decode again: %v", err)
		}
		if again.Digest() != b.Digest() {
			t.Fatalf("digest %s, then %s", b.Digest(), again.Digest())
		}
	})
}
