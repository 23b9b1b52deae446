package app

import "testing"

// FuzzParseModelCard parses any model card without a panic.
func FuzzParseModelCard(f *testing.F) {
	f.Add([]byte("name: bearing-failure\nformat: lightgbm\nfeatures: [a, b]\n"))
	f.Add([]byte("features: {"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseModelCard(data)
	})
}
