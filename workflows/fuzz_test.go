package workflows

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecodeCheckpoint decodes any continue-as-new state (a release's
// ReleaseInput.Resume): an error, nothing (empty), or a checkpoint whose
// JSON is stable — encoding it and decoding that gives the same JSON, so
// a release continuing as new twice carries the same state both times.
func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add([]byte(`{"wave":1,"remaining":[{"id":"s1"}]}`))
	f.Add([]byte(`{"wave":2,"touched":[["s1","s2"]],"controls":{"Paused":true,"nonces":[{"nonce":"n","expires":"2026-01-01T00:00:00Z"}]},"newVersion":{"version":"2","digest":"sha256:00","weight":10}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeCheckpoint(data)
		if err != nil || c == nil {
			if len(data) == 0 && (c != nil || err != nil) {
				t.Fatalf("empty resume: %v, %v", c, err)
			}
			return
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("a decoded checkpoint does not encode: %v", err)
		}
		c2, err := decodeCheckpoint(b)
		if err != nil || c2 == nil {
			t.Fatalf("a checkpoint's own JSON does not decode: %v\n%s", err, b)
		}
		b2, _ := json.Marshal(c2)
		if !bytes.Equal(b, b2) {
			t.Fatalf("checkpoint JSON changes across a continue-as-new:\n%s\n%s", b, b2)
		}
	})
}
