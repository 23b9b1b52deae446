package training

import (
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/modelfleet/modelfleet"
)

// FuzzParsePolicies parses any training policies file: an invalid-input
// error, or policies that validate and survive a round trip through YAML
// (what `modelfleet` prints is what it reads back).
func FuzzParsePolicies(f *testing.F) {
	f.Add([]byte("bearing-failure:\n  compute: {kind: local}\n  command: train\n"))
	f.Add([]byte("m:\n  compute: {kind: azureml, target: gpu}\n  command: python train.py\n  minInterval: 1h\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ParsePolicies(data)
		if err != nil {
			if modelfleet.ErrorCode(err) != modelfleet.EINVALID {
				t.Fatalf("a refusal that is not invalid input: %v", err)
			}
			return
		}
		b, err := yaml.Marshal(ps)
		if err != nil {
			t.Fatalf("accepted policies do not encode: %v", err)
		}
		again, err := ParsePolicies(b)
		if err != nil || !reflect.DeepEqual(again, ps) {
			t.Fatalf("round trip:\n%s\n→ %+v, %v\nwant %+v", b, again, err, ps)
		}
	})
}
