package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

func writePolicies(t *testing.T, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policies.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const edgePolicy = `
models:
  press-anomaly:
    compute:
      kind: azureml-edge
      computeId: /subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/computes/arc-plant-a
    command: python train.py --data ${{inputs.data}} --out ${{outputs.model}}
    environment: azureml:lightgbm-train:3
    data: azureml://datastores/plant_a/paths/press/labelled/
`

func TestWorkerRetrainingFromPolicies(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Setenv("AZURE_SUBSCRIPTION_ID", "")

	if rt, err := (&trainingFlags{}).retraining(nil, nil, log); rt != nil || err != nil {
		t.Fatalf("no policies: %v %v, want no retraining compute", rt, err)
	}

	dir := t.TempDir()
	local := &trainingFlags{dir: dir, policies: writePolicies(t, `
models:
  bearing-failure:
    compute: {kind: local}
    command: go run ./examples/bearing-failure/train -data ${{inputs.data}} -out ${{outputs.model}}
`)}
	rt, err := local.retraining(nil, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rt.Runners[modelfleet.ComputeLocal]; !ok || len(rt.Runners) != 1 || rt.DataDir != filepath.Join(dir, "data") {
		t.Errorf("local policy: runners %v, data %q", rt.Runners, rt.DataDir)
	}
	if _, ok := rt.Policies.Models["bearing-failure"]; !ok {
		t.Errorf("policies %+v", rt.Policies)
	}

	edge := &trainingFlags{dir: dir, policies: writePolicies(t, edgePolicy)}
	if _, err := edge.retraining(nil, nil, log); err == nil || !strings.Contains(err.Error(), "--amlarc-*") {
		t.Errorf("azure ml policy without a workspace: err = %v, want one naming the flags", err)
	}
	var aml amlarcFlags
	aml.cfg.SubscriptionID, aml.cfg.ResourceGroup, aml.cfg.Workspace = "s", "rg", "ws"
	rt, err = edge.retraining(&aml, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{modelfleet.ComputeLocal, modelfleet.ComputeAzureMLCloud, modelfleet.ComputeAzureMLEdge} {
		if rt.Runners[k] == nil {
			t.Errorf("runner %s missing: %v", k, rt.Runners)
		}
	}

	bad := &trainingFlags{dir: dir, policies: writePolicies(t, "models:\n  m:\n    compute: {kind: gpu-farm}\n")}
	if _, err := bad.retraining(nil, nil, log); err == nil || !strings.Contains(err.Error(), "gpu-farm") {
		t.Errorf("bad kind: err = %v, want it named", err)
	}
	if _, err := (&trainingFlags{policies: filepath.Join(dir, "missing.yaml")}).retraining(nil, nil, log); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: err = %v", err)
	}
}
