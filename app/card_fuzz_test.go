package app

import (
	"bytes"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/modelfleet/modelfleet"
)

// FuzzParseModelCard parses any model card: an invalid-input error, or a
// card that survives a round trip through YAML.
func FuzzParseModelCard(f *testing.F) {
	f.Add([]byte("name: bearing-failure\nformat: lightgbm\nfeatures: [a, b]\n"))
	f.Add([]byte("name: m\nworkload: w:1\nvalidation: {data: v.csv, metric: auc, threshold: 0.8}\n"))
	f.Add([]byte("features: {"))
	f.Add([]byte("format: oip\nfeatures: [a]\nserver: {name: triton, model: bearing, task: binary, args: ['--model-repository={model_dir}']}\n"))
	f.Add([]byte("features: [t, s]\nunits: {t: degC, s: \" rpm\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseModelCard(data)
		if err != nil {
			if modelfleet.ErrorCode(err) != modelfleet.EINVALID {
				t.Fatalf("a refusal that is not invalid input: %v", err)
			}
			return
		}
		b, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("an accepted card does not encode: %v", err)
		}
		// Compared as YAML: an empty list or map and none read alike.
		again, err := ParseModelCard(b)
		if err != nil {
			t.Fatalf("its own YAML is refused: %v\n%s", err, b)
		}
		if b2, _ := yaml.Marshal(again); !bytes.Equal(b, b2) {
			t.Fatalf("round trip:\n%s\n→\n%s", b, b2)
		}
	})
}
