package activities

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

type keySigner struct{ key ed25519.PrivateKey }

func (k keySigner) SignRelease(_ context.Context, st modelfleet.Statement) (*modelfleet.Envelope, error) {
	return modelfleet.SignStatement(st, []ed25519.PrivateKey{k.key})
}

func (k keySigner) SignWorkload(_ context.Context, st modelfleet.WorkloadStatement) (*modelfleet.Envelope, error) {
	return modelfleet.SignWorkloadStatement(st, []ed25519.PrivateKey{k.key})
}

func TestSignReleaseSignsWhatValidationPassed(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	a := &Cloud{Signer: keySigner{key}}
	digest := "sha256:" + strings.Repeat("c", 64)
	report := ValidationReport{
		Model:    modelfleet.Model{ModelRef: modelfleet.ModelRef{Name: "m", Version: "4"}, Format: "onnx", Digest: digest, Size: 77, Features: []string{"x"}},
		Result:   modelfleet.ValidationResult{Metric: "auc", Value: 0.9, Threshold: 0.8, Rows: 10, Passed: true},
		Baseline: "sha256:" + strings.Repeat("d", 64),
	}
	env, err := a.SignRelease(context.Background(), SignRequest{Release: "release/m/4", Report: report})
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	trust := &modelfleet.Trust{Keys: []modelfleet.TrustedKey{{ID: modelfleet.KeyID(pub), PublicKey: pub}}}
	v := modelfleet.DesiredVersion{Version: "4", Digest: digest, Size: 77, Format: "onnx", Features: []string{"x"}, Baseline: report.Baseline}
	st, err := trust.VerifyRelease(env, "m", v)
	if err != nil {
		t.Fatalf("the signed statement does not verify: %v", err)
	}
	if p := st.Predicate; p.Release != "release/m/4" || p.Validation.Rows != 10 || p.Validation.Metric != "auc" || p.SignedAt.IsZero() {
		t.Fatalf("predicate %+v", p)
	}
	report.Result.Passed = false
	if _, err := a.SignRelease(context.Background(), SignRequest{Release: "release/m/4", Report: report}); err == nil {
		t.Fatal("signed a version that failed validation")
	}
}

// A step that carries a workload carries its signed statement too, so the
// workload stays vouched for at the sites after a later release of the
// model (one naming no workload) replaces the version that brought it.
func TestApplyStepSignsTheWorkloadItCarries(t *testing.T) {
	f := newPlanFixture(t)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	f.cloud.Signer = keySigner{key}
	w2, _, err := f.dir.RegisterWorkload(workloadDoc(t, "2"))
	if err != nil {
		t.Fatal(err)
	}
	f.model("2", "bearing-failure-line:2", bearingFeatures...)
	v2 := modelfleet.DesiredVersion{Version: "2", Digest: "sha256:" + strings.Repeat("2", 64), Format: "lightgbm", Features: bearingFeatures, Weight: 100}
	if _, err := f.cloud.ApplyStep(context.Background(), modelfleet.StepRequest{Release: "release/bearing-failure/2", Model: "bearing-failure", New: v2, Sites: []string{"c1"}}); err != nil {
		t.Fatal(err)
	}
	ds, err := f.dir.Desired(context.Background(), "c1", -1)
	if err != nil {
		t.Fatal(err)
	}
	dw := ds.Workloads["bearing-failure-line"]
	pub := key.Public().(ed25519.PublicKey)
	trust := &modelfleet.Trust{Keys: []modelfleet.TrustedKey{{ID: modelfleet.KeyID(pub), PublicKey: pub}}}
	if dw.Version != "2" || dw.Digest != w2.Digest {
		t.Fatalf("desired workload %+v, want version 2", dw)
	}
	if err := trust.VerifyWorkload(dw.Statement, "bearing-failure-line", dw); err != nil {
		t.Fatalf("the carried workload's statement: %v", err)
	}
}
