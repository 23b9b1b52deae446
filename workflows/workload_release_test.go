package workflows

import (
	"context"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/orchestrator"
	"github.com/modelfleet/modelfleet/rollout"
)

var line2 = modelfleet.WorkloadRef{Name: "bearing-failure-line", Version: "2"}

const line2ID = "release/bearing-failure/workload/bearing-failure-line/2"

// workloadHarness runs a workload release against mocked activities.
type workloadHarness struct {
	t        *testing.T
	env      *testsuite.TestWorkflowEnvironment
	steps    []activities.WorkloadStep
	rollback [][]string
	finished []string
	failing  map[string]string
	plans    []activities.WorkloadPlanRequest
	attrs    []temporal.SearchAttributes
}

func newWorkloadHarness(t *testing.T, policy string, waves ...[]activities.PlannedSite) *workloadHarness {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	h := &workloadHarness{t: t, env: s.NewTestWorkflowEnvironment(), failing: map[string]string{}}
	h.env.RegisterWorkflowWithOptions(WorkloadRelease, workflow.RegisterOptions{Name: modelfleet.WorkloadReleaseWorkflowName})
	h.env.RegisterActivity(&activities.Cloud{})
	p, err := rollout.Parse([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	h.env.OnActivity(cloud.PlanWorkloadRelease, mock.Anything, mock.Anything).Return(func(_ context.Context, req activities.WorkloadPlanRequest) (activities.RolloutPlan, error) {
		h.plans = append(h.plans, req)
		return activities.RolloutPlan{Policy: p, Waves: waves}, nil
	})
	h.env.OnActivity(cloud.ApplyWorkloadStep, mock.Anything, mock.Anything).Return(func(_ context.Context, req activities.WorkloadStep) (modelfleet.StepResult, error) {
		h.steps = append(h.steps, req)
		return modelfleet.StepResult{Changed: len(req.Sites)}, nil
	})
	h.env.OnActivity(cloud.AwaitConverged, mock.Anything, mock.Anything).Return(func(_ context.Context, req activities.AwaitRequest) (modelfleet.Progress, error) {
		if req.Version != "" {
			t.Errorf("await for version %q, want none (the model's versions do not change)", req.Version)
		}
		var p modelfleet.Progress
		for _, s := range req.Sites {
			if reason, bad := h.failing[s]; bad {
				p.Failed = append(p.Failed, modelfleet.SiteFailure{Site: s, Reason: reason})
			} else {
				p.Converged = append(p.Converged, s)
			}
		}
		return p, nil
	})
	h.env.OnActivity(cloud.RollbackSites, mock.Anything, mock.Anything).Return(func(_ context.Context, req modelfleet.LeaseRequest) (modelfleet.StepResult, error) {
		h.rollback = append(h.rollback, req.Sites)
		return modelfleet.StepResult{Changed: len(req.Sites)}, nil
	})
	h.env.OnActivity(cloud.RollbackAndAwait, mock.Anything, mock.Anything).Return(func(_ context.Context, req activities.RollbackRequest) (modelfleet.Progress, error) {
		if req.Version != "" || req.Release != line2ID {
			t.Errorf("restore for release %q version %q, want %q and none (the model's versions do not change)", req.Release, req.Version, line2ID)
		}
		h.rollback = append(h.rollback, req.Sites)
		return modelfleet.Progress{Converged: req.Sites}, nil
	})
	h.env.OnActivity(cloud.FinishRelease, mock.Anything, mock.Anything).Return(func(_ context.Context, req modelfleet.LeaseRequest) (modelfleet.StepResult, error) {
		if req.Release != line2ID {
			t.Errorf("finish %q, want %q", req.Release, line2ID)
		}
		h.finished = append(h.finished, req.Sites...)
		return modelfleet.StepResult{}, nil
	})
	h.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		h.attrs = append(h.attrs, args.Get(0).(temporal.SearchAttributes))
	}).Return(nil)
	return h
}

func (h *workloadHarness) run(in modelfleet.WorkloadReleaseInput) (modelfleet.ReleaseStatus, error) {
	h.env.ExecuteWorkflow(modelfleet.WorkloadReleaseWorkflowName, in)
	if !h.env.IsWorkflowCompleted() {
		h.t.Fatal("workflow did not complete")
	}
	v, err := h.env.QueryWorkflow(modelfleet.StatusQuery)
	if err != nil {
		h.t.Fatalf("status query: %v", err)
	}
	var st modelfleet.ReleaseStatus
	if err := v.Get(&st); err != nil {
		h.t.Fatal(err)
	}
	return st, h.env.GetWorkflowError()
}

// A workload release goes wave by wave like a model release, one swap per
// batch (no traffic steps), and indexes itself by model, workload and stage.
func TestWorkloadReleaseRollsOutWaveByWave(t *testing.T) {
	h := newWorkloadHarness(t, twoWaves, sites("c1"), sites("f1", "f2", "f3"))
	st, err := h.run(modelfleet.WorkloadReleaseInput{Model: "bearing-failure", Workload: line2})
	if err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	if got, want := st.State, modelfleet.StateSucceeded; got != want {
		t.Errorf("state = %q (%s), want %q", got, st.Reason, want)
	}
	var got []string
	for _, s := range h.steps {
		if s.Release != line2ID || s.Model != "bearing-failure" || s.Workload != line2 {
			t.Errorf("step = %+v", s)
		}
		got = append(got, strings.Join(s.Sites, "+"))
	}
	if want := "c1 f1+f2 f3"; strings.Join(got, " ") != want {
		t.Errorf("steps = %v, want %s", got, want)
	}
	if len(h.finished) != 4 || len(h.rollback) != 0 {
		t.Errorf("finished %v rolled back %v, want 4 leases freed and no rollback", h.finished, h.rollback)
	}
	if st.Workload == nil || *st.Workload != line2 || st.WorkflowID() != line2ID {
		t.Errorf("status names workload %v, workflow %q", st.Workload, st.WorkflowID())
	}
	for _, s := range st.Sites {
		if s.State != modelfleet.SiteHealthy || s.Reason != "running workload bearing-failure-line:2" {
			t.Errorf("site %s = %q (%s)", s.Site, s.State, s.Reason)
		}
	}
	var stages []string
	for _, sa := range h.attrs {
		if st, ok := sa.GetKeyword(orchestrator.StageAttr); ok {
			stages = append(stages, st)
			m, _ := sa.GetKeyword(orchestrator.ModelAttr)
			w, _ := sa.GetKeyword(orchestrator.WorkloadAttr)
			if m != "bearing-failure" || w != "bearing-failure-line:2" {
				t.Errorf("search attributes model %q workload %q", m, w)
			}
		}
	}
	if !slices.Contains(stages, modelfleet.StateDeploying) || stages[len(stages)-1] != modelfleet.StateSucceeded {
		t.Errorf("stages = %v", stages)
	}
}

// A breach rolls every touched site back, last wave first; the operator
// controls and the approval gate are the release's own.
func TestWorkloadReleaseBreachRollsBack(t *testing.T) {
	h := newWorkloadHarness(t, `
waves:
  - {name: canary, select: {ring: canary}}
  - {name: fleet, failureBudget: 0}
`, sites("c1"), sites("f1", "f2"))
	h.failing["f2"] = "workload bearing-failure-line:2: manifest needs field \"load_ratio\" the code does not read"
	st, err := h.run(modelfleet.WorkloadReleaseInput{Model: "bearing-failure", Workload: line2})
	if err == nil {
		t.Fatal("release succeeded, want a breach")
	}
	if got, want := st.State, modelfleet.StateRolledBack; got != want {
		t.Errorf("state = %q, want %q", got, want)
	}
	if want := [][]string{{"c1", "f1", "f2"}}; !slices.EqualFunc(h.rollback, want, slices.Equal) {
		t.Errorf("rolled back %v, want %v", h.rollback, want)
	}
}

func TestWorkloadReleaseApprovalAndPolicy(t *testing.T) {
	h := newWorkloadHarness(t, `
waves:
  - {name: canary, select: {ring: canary}}
  - {name: fleet}
approval: {after: [canary], timeout: 1h, onTimeout: abort}
`, sites("c1"), sites("f1"))
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(modelfleet.SignalApprove, modelfleet.Control{By: "ops", Reason: "canary fine"})
	}, time.Minute)
	st, err := h.run(modelfleet.WorkloadReleaseInput{Model: "bearing-failure", Workload: line2, Policy: "waves: [{name: all}]"})
	if err != nil || st.State != modelfleet.StateSucceeded {
		t.Fatalf("state %q (%s), err %v", st.State, st.Reason, err)
	}
	if len(h.plans) != 1 || h.plans[0].Policy != "waves: [{name: all}]" {
		t.Errorf("plan requests = %+v, want the input's policy passed on", h.plans)
	}
	if len(st.Controls) != 1 || st.Controls[0].Action != modelfleet.SignalApprove || st.Controls[0].Wave != "canary" {
		t.Errorf("controls = %+v", st.Controls)
	}
}

func TestWorkloadReleaseRejectsABadRef(t *testing.T) {
	h := newWorkloadHarness(t, twoWaves, sites("c1"))
	st, err := h.run(modelfleet.WorkloadReleaseInput{Model: "bearing-failure", Workload: modelfleet.WorkloadRef{Name: "line", Version: "../2"}})
	if err == nil || st.State != modelfleet.StateFailed || len(h.plans) != 0 {
		t.Fatalf("state %q, err %v, plans %d: want failed before planning", st.State, err, len(h.plans))
	}
}

// Through the fleet directory: the real plan, step, rollback and finish
// activities over HTTP; only the agents' convergence is simulated.
type directoryFixture struct {
	dir   *fleet.Directory
	cloud *activities.Cloud // the real activities, over the directory's HTTP API
	env   *testsuite.TestWorkflowEnvironment
	v1    modelfleet.DesiredVersion
}

func newDirectoryFixture(t *testing.T, policy string) *directoryFixture {
	t.Helper()
	d, err := fleet.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	for id, ring := range map[string]string{"c1": "canary", "f1": "fleet", "f2": "fleet"} {
		if _, err := d.Put(modelfleet.Site{ID: id, TaskQueue: modelfleet.SiteTaskQueue(id), Labels: map[string]string{"ring": ring}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.PutPolicy("bearing-failure", []byte(policy)); err != nil {
		t.Fatal(err)
	}
	w1, _, err := d.RegisterWorkload(workloadManifest(t, "1"))
	if err != nil {
		t.Fatal(err)
	}
	f := &directoryFixture{dir: d}
	features := []string{"vibration_rms_mm_s", "vibration_peak_g", "temperature_c", "speed_rpm", "load_pct", "bearing_age_h"}
	f.v1 = modelfleet.DesiredVersion{Version: "1", Digest: "sha256:" + strings.Repeat("1", 64), Format: "lightgbm", Features: features, Weight: 100}
	all := []string{"c1", "f1", "f2"}
	if _, err := d.Step(modelfleet.StepRequest{Release: "release/bearing-failure/1", Model: "bearing-failure", New: f.v1, Sites: all, Workload: &w1}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Finish("release/bearing-failure/1", "bearing-failure", all); err != nil {
		t.Fatal(err)
	}
	var s testsuite.WorkflowTestSuite
	f.env = s.NewTestWorkflowEnvironment()
	f.env.RegisterWorkflowWithOptions(WorkloadRelease, workflow.RegisterOptions{Name: modelfleet.WorkloadReleaseWorkflowName})
	f.cloud = &activities.Cloud{Fleet: &fleet.Client{BaseURL: srv.URL}}
	f.env.RegisterActivity(f.cloud)
	return f
}

// workloadManifest is the sample manifest as version, its features renamed.
func workloadManifest(t *testing.T, version string, rename ...string) []byte {
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

// converge simulates the agents: each site reports its desired revision
// applied, failing the sites in failing. RollbackAndAwait restores the
// sites with the real RollbackSites first.
func (f *directoryFixture) converge(t *testing.T, failing map[string]string) {
	f.env.OnActivity(cloud.AwaitConverged, mock.Anything, mock.Anything).Return(func(ctx context.Context, req activities.AwaitRequest) (modelfleet.Progress, error) {
		return f.report(ctx, req.Model, req.Version, req.Sites, failing)
	})
	f.env.OnActivity(cloud.RollbackAndAwait, mock.Anything, mock.Anything).Return(func(ctx context.Context, req activities.RollbackRequest) (modelfleet.Progress, error) {
		if _, err := f.cloud.RollbackSites(ctx, req.LeaseRequest); err != nil {
			return modelfleet.Progress{}, err
		}
		return f.report(ctx, req.Model, req.Version, req.Sites, failing)
	})
}

// report has each site report what its desired state says, and reads how
// far they converged.
func (f *directoryFixture) report(ctx context.Context, model, version string, sites []string, failing map[string]string) (modelfleet.Progress, error) {
	for _, s := range sites {
		ds, err := f.dir.Desired(ctx, s, -1)
		if err != nil {
			return modelfleet.Progress{}, err
		}
		a := modelfleet.Actual{Site: s, Revision: ds.Revision, Models: map[string]modelfleet.ActualModel{}, Workloads: map[string]modelfleet.ActualWorkload{}}
		for name, dm := range ds.Models {
			var vs []modelfleet.ServedVersion
			for _, v := range dm.Versions {
				vs = append(vs, modelfleet.ServedVersion{Version: v.Version, Weight: v.Weight})
			}
			a.Models[name] = modelfleet.ActualModel{Versions: vs}
		}
		for name, dw := range ds.Workloads {
			a.Workloads[name] = modelfleet.ActualWorkload{Version: dw.Version, Model: dw.Model, Error: failing[s]}
		}
		if err := f.dir.ReportActual(a); err != nil {
			return modelfleet.Progress{}, err
		}
	}
	return f.dir.Progress(model, version, sites)
}

func (f *directoryFixture) run(t *testing.T, in modelfleet.WorkloadReleaseInput) (modelfleet.ReleaseStatus, error) {
	t.Helper()
	f.env.ExecuteWorkflow(modelfleet.WorkloadReleaseWorkflowName, in)
	if !f.env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	v, err := f.env.QueryWorkflow(modelfleet.StatusQuery)
	if err != nil {
		t.Fatal(err)
	}
	var st modelfleet.ReleaseStatus
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st, f.env.GetWorkflowError()
}

// desired is what the directory wants a site to run: the model's versions
// and the workload's version, with the leases.
func (f *directoryFixture) desired(t *testing.T, site string) (modelfleet.DesiredModel, modelfleet.DesiredWorkload) {
	t.Helper()
	ds, err := f.dir.Desired(context.Background(), site, -1)
	if err != nil {
		t.Fatal(err)
	}
	return ds.Models["bearing-failure"], ds.Workloads["bearing-failure-line"]
}

const canaryThenFleet = `
waves:
  - {name: canary, select: {ring: canary}, steps: [10, 50, 100]}
  - {name: fleet, select: {ring: fleet}, failureBudget: 0}
`

func TestWorkloadReleaseThroughTheDirectory(t *testing.T) {
	f := newDirectoryFixture(t, canaryThenFleet)
	if _, _, err := f.dir.RegisterWorkload(workloadManifest(t, "2")); err != nil {
		t.Fatal(err)
	}
	f.converge(t, nil)
	st, err := f.run(t, modelfleet.WorkloadReleaseInput{Model: "bearing-failure", Workload: line2})
	if err != nil || st.State != modelfleet.StateSucceeded {
		t.Fatalf("state %q (%s), err %v", st.State, st.Reason, err)
	}
	for _, s := range []string{"c1", "f1", "f2"} {
		dm, dw := f.desired(t, s)
		if dw.Version != "2" || dw.Release != "" || dw.Previous != nil {
			t.Errorf("site %s workload = %s (lease %q), want 2 with the lease freed", s, dw.Version, dw.Release)
		}
		if dm.Release != "" || len(dm.Versions) != 1 || dm.Versions[0].Version != "1" || dm.Versions[0].Weight != 100 {
			t.Errorf("site %s model = %+v, want 1 at 100%% untouched, lease freed", s, dm)
		}
	}
}

func TestWorkloadReleaseRollbackRestoresThePreviousWorkload(t *testing.T) {
	f := newDirectoryFixture(t, canaryThenFleet)
	if _, _, err := f.dir.RegisterWorkload(workloadManifest(t, "2")); err != nil {
		t.Fatal(err)
	}
	f.converge(t, map[string]string{"f2": "paired code refuses the manifest"})
	st, err := f.run(t, modelfleet.WorkloadReleaseInput{Model: "bearing-failure", Workload: line2})
	if err == nil || st.State != modelfleet.StateRolledBack {
		t.Fatalf("state %q (%s), err %v; want rolled back", st.State, st.Reason, err)
	}
	for _, s := range []string{"c1", "f1", "f2"} {
		dm, dw := f.desired(t, s)
		if dw.Version != "1" || dw.Release != "" {
			t.Errorf("site %s workload = %s (lease %q), want 1 restored", s, dw.Version, dw.Release)
		}
		if dm.Release != "" || len(dm.Versions) != 1 || dm.Versions[0].Version != "1" {
			t.Errorf("site %s model = %+v, want 1 untouched, lease freed", s, dm)
		}
	}
}

// A workload version whose features the served model version does not take
// is refused at planning, naming both, before any site changes.
func TestWorkloadReleaseRefusesAnIncompatiblePair(t *testing.T) {
	f := newDirectoryFixture(t, canaryThenFleet)
	if _, _, err := f.dir.RegisterWorkload(workloadManifest(t, "3", "load_pct", "load_ratio")); err != nil {
		t.Fatal(err)
	}
	before := map[string]int64{}
	for _, s := range []string{"c1", "f1", "f2"} {
		ds, _ := f.dir.Desired(context.Background(), s, -1)
		before[s] = ds.Revision
	}
	var steps int
	f.env.OnActivity(cloud.ApplyWorkloadStep, mock.Anything, mock.Anything).Return(func(context.Context, activities.WorkloadStep) (modelfleet.StepResult, error) {
		steps++
		return modelfleet.StepResult{}, nil
	})
	st, err := f.run(t, modelfleet.WorkloadReleaseInput{Model: "bearing-failure", Workload: modelfleet.WorkloadRef{Name: "bearing-failure-line", Version: "3"}})
	if err == nil || st.State != modelfleet.StateFailed {
		t.Fatalf("state %q, err %v; want failed", st.State, err)
	}
	for _, want := range []string{`workload "bearing-failure-line:3"`, `model "bearing-failure:1"`, "refused before any site changed", "load_ratio", "at 3 sites"} {
		if !strings.Contains(st.Reason, want) {
			t.Errorf("reason %q does not say %q", st.Reason, want)
		}
	}
	if steps != 0 {
		t.Errorf("%d steps ran", steps)
	}
	for s, rev := range before {
		ds, _ := f.dir.Desired(context.Background(), s, -1)
		if ds.Revision != rev {
			t.Errorf("site %s revision %d -> %d: a site changed", s, rev, ds.Revision)
		}
	}
}
