package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// bearingFeatures is the example model's schema (model.yaml).
var bearingFeatures = []string{"vibration_rms_mm_s", "vibration_peak_g", "temperature_c", "speed_rpm", "load_pct", "bearing_age_h"}

// modelsOnly is a registry that knows model records, and serves the
// example model's artifact (exampleArtifact) and the golden XGBoost
// regressor's by digest.
type modelsOnly map[string]modelfleet.Model

// artifacts the test registry serves: the example's LightGBM model and a
// 5-feature XGBoost regressor.
var (
	exampleArtifact   = "../examples/bearing-failure/model.txt"
	regressorArtifact = "../inference/testdata/xgboost/golden/regression.json"
)

func fileDigest(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (r modelsOnly) Get(_ context.Context, name, version string) (modelfleet.Model, error) {
	m, ok := r[name+":"+version]
	if !ok {
		return m, modelfleet.Errorf(modelfleet.ENOTFOUND, "model %s:%s not found", name, version)
	}
	return m, nil
}

func (modelsOnly) Download(_ context.Context, _, digest string, w io.Writer) (int64, error) {
	for _, p := range []string{exampleArtifact, regressorArtifact} {
		if fileDigest(p) == digest {
			b, err := os.ReadFile(p)
			if err != nil {
				return 0, err
			}
			n, err := w.Write(b)
			return int64(n), err
		}
	}
	return 0, errors.New("no such artifact")
}

// workloadDoc is the sample manifest as version, with features renamed.
func workloadDoc(t *testing.T, version string, rename ...string) []byte {
	t.Helper()
	doc, err := os.ReadFile("../examples/bearing-failure/workload/workload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(doc), `version: "1"`, `version: "`+version+`"`, 1)
	head, features, ok := strings.Cut(s, "\nfeatures:")
	if !ok {
		t.Fatal("sample manifest has no features section")
	}
	for i := 0; i+1 < len(rename); i += 2 {
		features = strings.Replace(features, "{name: "+rename[i]+",", "{name: "+rename[i+1]+",", 1)
	}
	return []byte(head + "\nfeatures:" + features)
}

type planFixture struct {
	dir    *fleet.Directory
	cloud  *Cloud
	models modelsOnly
}

// newPlanFixture is a fleet directory over HTTP with a canary site and a
// fleet site, both serving bearing-failure:1 and running workload v1.
func newPlanFixture(t *testing.T) *planFixture {
	t.Helper()
	d, err := fleet.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	for id, ring := range map[string]string{"c1": "canary", "f1": "fleet"} {
		if _, err := d.Put(modelfleet.Site{ID: id, TaskQueue: modelfleet.SiteTaskQueue(id), Labels: map[string]string{"ring": ring}}); err != nil {
			t.Fatal(err)
		}
	}
	w1, _, err := d.RegisterWorkload(workloadDoc(t, "1"))
	if err != nil {
		t.Fatal(err)
	}
	v1 := modelfleet.DesiredVersion{Version: "1", Digest: "sha256:" + strings.Repeat("1", 64), Format: "lightgbm", Features: bearingFeatures, Weight: 100}
	if _, err := d.Step(modelfleet.StepRequest{Release: "release/bearing-failure/1", Model: "bearing-failure", New: v1, Sites: []string{"c1", "f1"}, Workload: &w1}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Finish("release/bearing-failure/1", "bearing-failure", []string{"c1", "f1"}); err != nil {
		t.Fatal(err)
	}
	models := modelsOnly{}
	return &planFixture{dir: d, models: models, cloud: &Cloud{Registry: models, Fleet: &fleet.Client{BaseURL: srv.URL}}}
}

func (f *planFixture) model(version, workloadRef string, features ...string) {
	m := modelfleet.Model{ModelRef: modelfleet.ModelRef{Name: "bearing-failure", Version: version}, Format: "lightgbm", Features: features,
		Digest: fileDigest(exampleArtifact), ArtifactURL: "http://registry.invalid/model.txt"}
	if workloadRef != "" {
		m.Properties = map[string]string{modelfleet.PropWorkload: workloadRef}
	}
	f.models["bearing-failure:"+version] = m
}

// plan runs the real PlanRollout activity inside the release workflow ID of
// bearing-failure:version, as the release workflow does: with the version
// (today's workflow) or, for version "2", without (older workflows).
func (f *planFixture) plan(t *testing.T, version string) (RolloutPlan, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(2 * time.Minute) // validating a workload module compiles it
	env.RegisterActivity(f.cloud)
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, model string) (RolloutPlan, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
			RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1}})
		var plan RolloutPlan
		args := []any{model}
		if version != "2" {
			args = append(args, &modelfleet.DesiredVersion{Version: version})
		}
		err := workflow.ExecuteActivity(ctx, "PlanRollout", args...).Get(ctx, &plan)
		return plan, err
	}, workflow.RegisterOptions{Name: "plan"})
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: modelfleet.ReleaseWorkflowID(modelfleet.ModelRef{Name: "bearing-failure", Version: version})})
	env.ExecuteWorkflow("plan", "bearing-failure")
	if err := env.GetWorkflowError(); err != nil {
		return RolloutPlan{}, err
	}
	var plan RolloutPlan
	return plan, env.GetWorkflowResult(&plan)
}

func (f *planFixture) unchanged(t *testing.T) {
	t.Helper()
	for _, site := range []string{"c1", "f1"} {
		ds, err := f.dir.Desired(context.Background(), site, -1)
		if err != nil {
			t.Fatal(err)
		}
		if ds.Revision != 1 || ds.Workloads["bearing-failure-line"].Version != "1" || modelfleet.SplitString(ds.Models["bearing-failure"].Versions) != "1:100" {
			t.Errorf("site %s changed by a refused plan: %+v", site, ds)
		}
	}
}

func TestPlanRefusesIncompatibleCarriedWorkload(t *testing.T) {
	f := newPlanFixture(t)
	if _, _, err := f.dir.RegisterWorkload(workloadDoc(t, "2", "load_pct", "load_ratio")); err != nil {
		t.Fatal(err)
	}
	f.model("2", "bearing-failure-line:2", bearingFeatures...)
	_, err := f.plan(t, "2")
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.NonRetryable() {
		t.Fatalf("plan error = %v, want a non-retryable application error", err)
	}
	for _, want := range []string{`"bearing-failure-line:2"`, `"bearing-failure:2"`, `"load_ratio"`, `"load_pct"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	f.unchanged(t)
}

func TestPlanRefusesNewSchemaAgainstTheSitesWorkload(t *testing.T) {
	f := newPlanFixture(t)
	renamed := slices.Clone(bearingFeatures)
	renamed[4] = "load_ratio"
	f.model("3", "", renamed...)
	_, err := f.plan(t, "3")
	if err == nil || !strings.Contains(err.Error(), `"bearing-failure-line:1"`) || !strings.Contains(err.Error(), `"bearing-failure:3"`) || !strings.Contains(err.Error(), "at 2 sites") {
		t.Fatalf("plan error = %v, want the site's workload and the new version named", err)
	}
	f.unchanged(t)
}

func TestPlanChecksThePreviousVersionWhileWavesSplit(t *testing.T) {
	f := newPlanFixture(t)
	// Workload 2 fits model version 4's new schema, not version 1, which the
	// default policy's canary steps (10%, 50%) keep serving beside it.
	if _, _, err := f.dir.RegisterWorkload(workloadDoc(t, "2", "load_pct", "load_ratio")); err != nil {
		t.Fatal(err)
	}
	renamed := slices.Clone(bearingFeatures)
	renamed[4] = "load_ratio"
	f.model("4", "bearing-failure-line:2", renamed...)
	_, err := f.plan(t, "4")
	if err == nil || !strings.Contains(err.Error(), "bearing-failure:1 keeps serving") || !strings.Contains(err.Error(), `"bearing-failure-line:2"`) {
		t.Fatalf("plan error = %v, want the split with version 1 refused", err)
	}
	f.unchanged(t)
	// Without split steps the pair never meets version 1: accepted.
	if _, err := f.dir.PutPolicy("bearing-failure", []byte("waves:\n  - name: all\n    steps: [100]\n")); err != nil {
		t.Fatal(err)
	}
	plan, err := f.plan(t, "4")
	if err != nil || len(plan.Waves) != 1 || len(plan.Waves[0]) != 2 {
		t.Fatalf("plan = %+v, %v", plan, err)
	}
}

func TestPlanAcceptsCompatibleWorkloadAndStepCarriesIt(t *testing.T) {
	f := newPlanFixture(t)
	w2, _, err := f.dir.RegisterWorkload(workloadDoc(t, "2"))
	if err != nil {
		t.Fatal(err)
	}
	f.model("2", "bearing-failure-line:2", bearingFeatures...)
	plan, err := f.plan(t, "2")
	if err != nil || len(plan.Waves) != 2 {
		t.Fatalf("plan = %+v, %v", plan, err)
	}
	carried, err := f.cloud.stepWorkload(context.Background(), modelfleet.StepRequest{Model: "bearing-failure", New: modelfleet.DesiredVersion{Version: "2"}})
	if err != nil || carried == nil || carried.Digest != w2.Digest {
		t.Fatalf("step workload = %+v, %v", carried, err)
	}
	// Naming a workload nobody registered fails the plan, not a step.
	f.model("5", "bearing-failure-line:9", bearingFeatures...)
	if _, err := f.plan(t, "5"); err == nil || !strings.Contains(err.Error(), "bearing-failure-line:9, which is not registered") {
		t.Errorf("unregistered workload: %v", err)
	}
}

func TestCheckPairingsNamesBoth(t *testing.T) {
	m := modelfleet.Model{ModelRef: modelfleet.ModelRef{Name: "bearing-failure", Version: "2"}, Features: bearingFeatures}
	other := &modelfleet.WorkloadRecord{Name: "press-line", Version: "7", Model: "press", Features: bearingFeatures}
	err := CheckPairings(m, other, false, nil)
	var inc *spec.IncompatibleError
	if !errors.As(err, &inc) || inc.Workload != "press-line:7" || inc.Model != "bearing-failure:2" || modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("err = %v", err)
	}
	ok := &modelfleet.WorkloadRecord{Name: "bearing-failure-line", Version: "2", Model: "bearing-failure", Features: bearingFeatures}
	if err := CheckPairings(m, ok, true, []modelfleet.SitePairing{{Site: "s", Versions: []modelfleet.DesiredVersion{{Version: "1", Features: bearingFeatures}}}}); err != nil {
		t.Errorf("compatible: %v", err)
	}
}

func TestPlanWorkloadRelease(t *testing.T) {
	f := newPlanFixture(t)
	ctx := context.Background()
	for _, doc := range [][]byte{workloadDoc(t, "2"), workloadDoc(t, "3", "load_pct", "load_ratio")} {
		if _, _, err := f.dir.RegisterWorkload(doc); err != nil {
			t.Fatal(err)
		}
	}
	req := func(v string) WorkloadPlanRequest {
		return WorkloadPlanRequest{Model: "bearing-failure", Workload: modelfleet.WorkloadRef{Name: "bearing-failure-line", Version: v}}
	}
	plan, err := f.cloud.PlanWorkloadRelease(ctx, req("2"))
	if err != nil || len(slices.Concat(plan.Waves...)) != 2 {
		t.Fatalf("plan of a compatible workload = %+v, %v", plan, err)
	}
	_, err = f.cloud.PlanWorkloadRelease(ctx, req("3"))
	var pe *PairingError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), `workload "bearing-failure-line:3" is incompatible with model "bearing-failure:1"`) || !strings.Contains(err.Error(), "at 2 sites") {
		t.Errorf("incompatible workload: %v", err)
	}
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.NonRetryable() {
		t.Errorf("refusal is retryable: %v", err)
	}
	if _, err := f.cloud.PlanWorkloadRelease(ctx, req("9")); err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Errorf("unregistered workload: %v", err)
	}
	other := req("2")
	other.Model = "pump-failure"
	if _, err := f.cloud.PlanWorkloadRelease(ctx, other); err == nil || !strings.Contains(err.Error(), `calls model "bearing-failure"`) {
		t.Errorf("workload of another model: %v", err)
	}
	// A site selected by the policy that serves no version of the model.
	if _, err := f.dir.Put(modelfleet.Site{ID: "f2", TaskQueue: modelfleet.SiteTaskQueue("f2"), Labels: map[string]string{"ring": "fleet"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cloud.PlanWorkloadRelease(ctx, req("2")); err == nil || !strings.Contains(err.Error(), `serve no version of model "bearing-failure" (e.g. "f2")`) {
		t.Errorf("site without the model: %v", err)
	}
	// The request's own policy instead of the model's.
	r := req("2")
	r.Policy = "waves: [{name: canary, select: {ring: canary}}]"
	if plan, err := f.cloud.PlanWorkloadRelease(ctx, r); err != nil || len(plan.Waves) != 1 || len(plan.Waves[0]) != 1 {
		t.Errorf("plan with the request's policy = %+v, %v", plan, err)
	}
}
