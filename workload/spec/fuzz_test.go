package spec

import "testing"

// FuzzParseManifest parses any workload.yaml: an error or a manifest that
// validates, never a panic.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte("name: line\nversion: \"1\"\nmodel: bearing-failure\n"))
	f.Add([]byte("name: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("ParseManifest accepted a manifest that does not validate: %v", err)
		}
	})
}
