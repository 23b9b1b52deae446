package training

import (
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

func TestParsePolicies(t *testing.T) {
	ps, err := ParsePolicies([]byte(`
models:
  bearing-failure:
    compute: {kind: local}
    command: go run ./examples/bearing-failure/train -data ${{inputs.data}} -out ${{outputs.model}}
  press:
    compute:
      kind: azureml-edge
      computeId: ` + computes + `arc-plant-a
    command: python train.py --data ${{inputs.data}} --out ${{outputs.model}}
    environment: azureml:lightgbm-train:3
    data: azureml://datastores/plant_a/paths/press/labelled/
    timeout: 2h
`))
	if err != nil {
		t.Fatal(err)
	}
	p, ok := ps.For("press")
	if !ok || p.Compute.Kind != modelfleet.ComputeAzureMLEdge || p.Compute.ComputeName() != "arc-plant-a" || p.Timeout.Std() != 2*time.Hour {
		t.Errorf("press = %+v", p)
	}
	if _, ok := ps.For("other"); ok {
		t.Error("a model without a policy got one")
	}
	ps.Default = &modelfleet.TrainingPolicy{Compute: modelfleet.ComputePolicy{Kind: modelfleet.ComputeLocal}, Command: "train"}
	if p, ok := ps.For("other"); !ok || p.Command != "train" {
		t.Errorf("default = %+v %v", p, ok)
	}
}

func TestPolicyValidation(t *testing.T) {
	id := computes + "gpu"
	bad := map[string]string{
		"no kind":        `{compute: {}, command: x}`,
		"unknown kind":   `{compute: {kind: gpu}, command: x}`,
		"local with id":  `{compute: {kind: local, computeId: ` + id + `}, command: x}`,
		"cloud no id":    `{compute: {kind: azureml-cloud}, command: x, environment: e, data: azureml://x}`,
		"cloud bad id":   `{compute: {kind: azureml-cloud, computeId: /subscriptions/s/computes/x}, command: x, environment: e, data: azureml://x}`,
		"no command":     `{compute: {kind: local}}`,
		"cloud no env":   `{compute: {kind: azureml-cloud, computeId: ` + id + `}, command: x, data: azureml://x}`,
		"cloud no data":  `{compute: {kind: azureml-cloud, computeId: ` + id + `}, command: x, environment: e}`,
		"cloud bad data": `{compute: {kind: azureml-cloud, computeId: ` + id + `}, command: x, environment: e, data: /mnt/data}`,
		"unknown field":  `{compute: {kind: local}, command: x, gpu: true}`,
		"bad duration":   `{compute: {kind: local}, command: x, timeout: soon}`,
	}
	for name, doc := range bad {
		_, err := ParsePolicies([]byte("models:\n  m: " + doc + "\n"))
		if modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		} else if !strings.Contains(err.Error(), "m") {
			t.Errorf("%s: %v does not name the model", name, err)
		}
	}
	if _, err := ParsePolicies([]byte("models:\n  '../x': {compute: {kind: local}, command: x}\n")); err == nil {
		t.Error("an invalid model name was accepted")
	}
	if _, err := ParsePolicies(nil); err != nil {
		t.Errorf("empty policies: %v", err)
	}
}

func TestValidJobID(t *testing.T) {
	for id, want := range map[string]bool{
		"retrain-bearing-failure-0a1b2c3d4e5f-1": true, "a": true, "A_b-9": true,
		"": false, "-a": false, "a.b": false, "a/b": false, "../x": false, strings.Repeat("a", 256): false,
	} {
		if got := modelfleet.ValidJobID(id); got != want {
			t.Errorf("ValidJobID(%q) = %v, want %v", id, got, want)
		}
	}
}
