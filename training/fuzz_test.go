package training

import "testing"

// FuzzParsePolicies parses any training policies file without a panic.
func FuzzParsePolicies(f *testing.F) {
	f.Add([]byte("bearing-failure:\n  compute: {kind: local}\n  command: train\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParsePolicies(data)
	})
}
