package workflows

import "testing"

// FuzzDecodeCheckpoint decodes any continue-as-new state without a panic.
func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add([]byte(`{"wave":1,"remaining":[{"id":"s1"}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = decodeCheckpoint(data)
	})
}
