package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/workload"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// registerModuleWorkload uploads code and registers the sample manifest as
// version naming it.
func (f *planFixture) registerModuleWorkload(t *testing.T, version string, code []byte) {
	t.Helper()
	sum := sha256.Sum256(code)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	doc, err := spec.SetModuleDigest(workloadDoc(t, version), digest)
	if err != nil {
		t.Fatal(err)
	}
	fc := f.cloud.Fleet.(*fleet.Client)
	if err := fc.UploadWorkloadModule(context.Background(), digest, code); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.dir.RegisterWorkload(doc); err != nil {
		t.Fatal(err)
	}
}

// A workload release whose manifest names a module instantiates it and
// runs the manifest's sample inputs through it before any site changes:
// the example's module passes; a module without the ABI and a malformed
// one are refused, non-retryably, alone or carried by a model release,
// and no site changed.
func TestPlanValidatesWorkloadModule(t *testing.T) {
	f := newPlanFixture(t)
	f.cloud.Modules = f.cloud.Fleet.(*fleet.Client)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "line.wasm")
	if _, err := workload.BuildModule(ctx, "", "../examples/bearing-failure/workload/module", out); err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	f.registerModuleWorkload(t, "2", code)
	f.registerModuleWorkload(t, "3", []byte("\x00asm\x01\x00\x00\x00"))
	f.registerModuleWorkload(t, "4", []byte("\x00asm\x01\x00\x00\x00\x01\xff"))
	req := func(v string) WorkloadPlanRequest {
		r := WorkloadPlanRequest{Model: "bearing-failure"}
		r.Workload.Name, r.Workload.Version = "bearing-failure-line", v
		return r
	}
	if _, err := f.cloud.PlanWorkloadRelease(ctx, req("2")); err != nil {
		t.Fatalf("the example's module: %v", err)
	}
	for v, want := range map[string]string{"3": "does not implement ABI 1", "4": "not a valid WebAssembly module"} {
		_, err := f.cloud.PlanWorkloadRelease(ctx, req(v))
		var app *temporal.ApplicationError
		if err == nil || !strings.Contains(err.Error(), want) || !errors.As(err, &app) || !app.NonRetryable() {
			t.Errorf("workload %s: %v, want a non-retryable refusal containing %q", v, err, want)
		}
	}
	f.model("5", "bearing-failure-line:3", bearingFeatures...)
	if _, err := f.plan(t, "5"); err == nil || !strings.Contains(err.Error(), "does not implement ABI 1") {
		t.Errorf("a model release carrying a module without the ABI: %v", err)
	}
	f.model("6", "bearing-failure-line:2", bearingFeatures...)
	if _, err := f.plan(t, "6"); err != nil {
		t.Errorf("a model release carrying the example's module: %v", err)
	}
	// The release's model scores what the module prepares: a model that
	// takes other features than the module prepares is refused.
	f.model("7", "bearing-failure-line:2", bearingFeatures...)
	m7 := f.models["bearing-failure:7"]
	m7.Format, m7.Digest = "xgboost", fileDigest(regressorArtifact)
	f.models["bearing-failure:7"] = m7
	if _, err := f.plan(t, "7"); err == nil || !strings.Contains(err.Error(), "prepares 6 features, model bearing-failure:7 takes 5") {
		t.Errorf("a model release whose model cannot score the module's features: %v", err)
	}
	f.unchanged(t)

	// Without a way to read modules, a module is not waved through.
	bare := &Cloud{Registry: f.models, Fleet: f.cloud.Fleet}
	if _, err := bare.PlanWorkloadRelease(ctx, req("2")); err == nil || !strings.Contains(err.Error(), "nowhere to read modules") {
		t.Errorf("no module reader: %v", err)
	}
}
