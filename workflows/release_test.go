package workflows

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/rollout"
)

var ref = modelfleet.ModelRef{Name: "bearing-failure", Version: "2"}

// harness runs the release against mocked activities that keep a tiny
// desired-state model: which sites were stepped, rolled back, finished.
type harness struct {
	t        *testing.T
	env      *testsuite.TestWorkflowEnvironment
	steps    []modelfleet.StepRequest
	rollback [][]string
	// restores are the RollbackAndAwait requests, awaited the sites of
	// each AwaitConverged.
	restores []activities.RollbackRequest
	awaited  [][]string
	finished []string
	failing  map[string]string // site -> reason its agent reports
	shift    float64           // prediction shift the sites report
	labelled int64             // labelled predictions of the new version the sites report
	correct  int64             // of which right
	report   activities.ValidationReport
	// traffic is what each converged site's counters (Progress.Counters)
	// gain per minute of workflow time, over lifetime counters that
	// already hold before; epoch is the agents' epoch (change it to
	// restart them).
	traffic, before siteTraffic
	epoch           string
	t0              time.Time
	reads           int // progress reads
	stepAt          []time.Time
	in              modelfleet.ReleaseInput // what run starts the release with
	signed          []activities.SignRequest
}

// siteTraffic is one site's figures of the new version (and the replaced
// versions' predictions), per minute or in total.
type siteTraffic struct {
	requests, errors  int64
	latencyBin        int
	preds, replaced   []int64
	labelled, correct int64
}

// counters are the sites' counters at workflow time now.
func (h *harness) counters(sites int, now time.Time) *modelfleet.Counters {
	minutes := int64(now.Sub(h.t0) / time.Minute)
	c := &modelfleet.Counters{Sites: sites, Epochs: h.epoch,
		Latency: make([]int64, len(modelfleet.LatencyBuckets)+1), Predictions: make([]int64, 10), Replaced: make([]int64, 10)}
	for _, t := range []struct {
		f siteTraffic
		k int64
	}{{h.before, int64(sites)}, {h.traffic, int64(sites) * minutes}} {
		c.Requests += t.f.requests * t.k
		c.Errors += t.f.errors * t.k
		c.Latency[t.f.latencyBin] += t.f.requests * t.k
		c.Labelled += t.f.labelled * t.k
		c.Correct += t.f.correct * t.k
		for b := range t.f.preds {
			c.Predictions[b] += t.f.preds[b] * t.k
		}
		for b := range t.f.replaced {
			c.Replaced[b] += t.f.replaced[b] * t.k
		}
	}
	return c
}

func newHarness(t *testing.T, policy string, waves ...[]activities.PlannedSite) *harness {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	h := &harness{t: t, env: s.NewTestWorkflowEnvironment(), failing: map[string]string{}, in: modelfleet.ReleaseInput{Model: ref}, epoch: "e1"}
	h.t0 = h.env.Now()
	requireHeartbeats(t, h.env)
	h.env.RegisterWorkflowWithOptions(Release, workflow.RegisterOptions{Name: modelfleet.ReleaseWorkflowName})
	h.env.RegisterActivity(&activities.Cloud{})
	h.env.RegisterActivity(&activities.Retraining{})
	p, err := rollout.Parse([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	h.report = passed()
	h.env.OnActivity(cloud.ValidateModel, mock.Anything, ref).Return(func(context.Context, modelfleet.ModelRef) (activities.ValidationReport, error) {
		return h.report, nil
	})
	h.env.OnActivity(cloud.SignRelease, mock.Anything, mock.Anything).Return(h.sign)
	h.env.OnActivity(cloud.PlanRollout, mock.Anything, ref.Name, mock.Anything).Return(activities.RolloutPlan{Policy: p, Waves: waves}, nil)
	h.env.OnActivity(cloud.ApplyStep, mock.Anything, mock.Anything).Return(func(_ context.Context, req modelfleet.StepRequest) (modelfleet.StepResult, error) {
		h.steps = append(h.steps, req)
		h.stepAt = append(h.stepAt, h.env.Now())
		return modelfleet.StepResult{Changed: len(req.Sites)}, nil
	})
	h.env.OnActivity(cloud.AwaitConverged, mock.Anything, mock.Anything).Return(func(_ context.Context, req activities.AwaitRequest) (modelfleet.Progress, error) {
		h.awaited = append(h.awaited, req.Sites)
		p := modelfleet.Progress{PredictionShift: h.shift, ShiftSamples: 500, Labelled: h.labelled, Correct: h.correct}
		for _, s := range req.Sites {
			if reason, bad := h.failing[s]; bad {
				p.Failed = append(p.Failed, modelfleet.SiteFailure{Site: s, Reason: reason})
			} else {
				p.Converged = append(p.Converged, s)
			}
		}
		h.reads++
		p.Counters = h.counters(len(p.Converged), h.env.Now())
		return p, nil
	})
	h.env.OnActivity(cloud.RollbackSites, mock.Anything, mock.Anything).Return(func(_ context.Context, req modelfleet.LeaseRequest) (modelfleet.StepResult, error) {
		h.rollback = append(h.rollback, req.Sites)
		return modelfleet.StepResult{Changed: len(req.Sites)}, nil
	})
	h.env.OnActivity(cloud.RollbackAndAwait, mock.Anything, mock.Anything).Return(func(_ context.Context, req activities.RollbackRequest) (modelfleet.Progress, error) {
		h.rollback = append(h.rollback, req.Sites)
		h.restores = append(h.restores, req)
		p := modelfleet.Progress{}
		for _, s := range req.Sites {
			if reason, bad := h.failing[s]; bad {
				p.Failed = append(p.Failed, modelfleet.SiteFailure{Site: s, Reason: reason})
			} else {
				p.Converged = append(p.Converged, s)
			}
		}
		return p, nil
	})
	h.env.OnActivity(cloud.FinishRelease, mock.Anything, mock.Anything).Return(func(_ context.Context, req modelfleet.LeaseRequest) (modelfleet.StepResult, error) {
		h.finished = append(h.finished, req.Sites...)
		return modelfleet.StepResult{}, nil
	})
	return h
}

func (h *harness) run() (modelfleet.ReleaseStatus, error) {
	h.env.ExecuteWorkflow(modelfleet.ReleaseWorkflowName, h.in)
	if !h.env.IsWorkflowCompleted() {
		h.t.Fatal("workflow did not complete")
	}
	return h.status(), h.env.GetWorkflowError()
}

func (h *harness) status() modelfleet.ReleaseStatus {
	h.t.Helper()
	v, err := h.env.QueryWorkflow(modelfleet.StatusQuery)
	if err != nil {
		h.t.Fatalf("status query: %v", err)
	}
	var st modelfleet.ReleaseStatus
	if err := v.Get(&st); err != nil {
		h.t.Fatal(err)
	}
	return st
}

func (h *harness) signal(after time.Duration, name string, by string) {
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(name, modelfleet.Control{By: by, Reason: "test"}) }, after)
}

func passed() activities.ValidationReport {
	return activities.ValidationReport{
		Model:  modelfleet.Model{ModelRef: ref, Format: "lightgbm", Digest: "sha256:" + strings.Repeat("a", 64), Size: 1234, ArtifactURL: "http://registry/blob"},
		Result: modelfleet.ValidationResult{Metric: "auc", Value: 0.95, Threshold: 0.85, Rows: 100, Passed: true},
	}
}

func sites(ids ...string) []activities.PlannedSite {
	out := make([]activities.PlannedSite, len(ids))
	for i, id := range ids {
		out[i] = activities.PlannedSite{ID: id}
	}
	return out
}

const twoWaves = `
waves:
  - {name: canary, select: {ring: canary}, steps: [10, 50, 100], bake: 10m}
  - {name: fleet, maxConcurrent: 2, bake: 1m}
`

func TestReleaseRollsOutWaveByWave(t *testing.T) {
	h := newHarness(t, twoWaves, sites("c1"), sites("f1", "f2", "f3"))
	st, err := h.run()
	if err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	if got, want := st.State, modelfleet.StateSucceeded; got != want {
		t.Errorf("state = %q, want %q", got, want)
	}
	// canary: 3 steps; fleet: batches {f1,f2} and {f3}, one step each.
	var got []string
	for _, s := range h.steps {
		got = append(got, strings.Join(s.Sites, "+")+"@"+strconv.Itoa(s.New.Weight))
	}
	if want := "c1@10 c1@50 c1@100 f1+f2@100 f3@100"; strings.Join(got, " ") != want {
		t.Errorf("steps = %v, want %s", got, want)
	}
	if h.steps[0].Release != "release/bearing-failure/2" || h.steps[0].New.Digest != passed().Model.Digest {
		t.Errorf("step request = %+v", h.steps[0])
	}
	for _, s := range st.Sites {
		if s.State != modelfleet.SiteHealthy {
			t.Errorf("site %s = %q, want healthy", s.Site, s.State)
		}
	}
	if len(h.finished) != 4 || len(h.rollback) != 0 {
		t.Errorf("finished %v rolled back %v, want 4 leases freed and no rollback", h.finished, h.rollback)
	}
	if c := st.Waves[1].Counts; c[modelfleet.SiteHealthy] != 3 {
		t.Errorf("fleet wave counts = %v, want 3 healthy", c)
	}
}

func TestReleaseStopsWhenValidationFails(t *testing.T) {
	h := newHarness(t, twoWaves, sites("c1"), sites("f1"))
	h.report.Result.Passed, h.report.Result.Value = false, 0.61
	st, err := h.run()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != "ValidationFailed" {
		t.Fatalf("workflow error = %v, want ValidationFailed", err)
	}
	if len(h.steps) != 0 {
		t.Errorf("stepped %d times after failed validation", len(h.steps))
	}
	if st.State != modelfleet.StateFailed || !strings.Contains(st.Reason, "0.6100 is below the threshold 0.8500") {
		t.Errorf("status = %q %q", st.State, st.Reason)
	}
}

func TestBudgetBreachRollsBackEveryTouchedSiteAtOnce(t *testing.T) {
	for _, v := range []string{"in one activity", "restore then await", "legacy wave by wave"} {
		t.Run(v, func(t *testing.T) { testBudgetBreachRollsBack(t, v) })
	}
}

func testBudgetBreachRollsBack(t *testing.T, variant string) {
	h := newHarness(t, `
waves:
  - {name: canary, select: {ring: canary}}
  - {name: fleet, failureBudget: 1}
`, sites("c1"), sites("f1", "f2", "f3"))
	switch variant {
	case "legacy wave by wave":
		// Recorded histories rolled back wave by wave, last first.
		h.env.OnGetVersion(rollbackAtOnce, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	case "restore then await":
		// Then all at once in two activities, RollbackSites and
		// AwaitConverged.
		h.env.OnGetVersion(rollbackAwaitInOne, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	}
	h.failing["f1"] = "load failed: corrupt"
	h.failing["f2"] = "digest mismatch"
	st, err := h.run()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != "Breach" || !strings.Contains(err.Error(), "2 sites failed, over its failure budget of 1") {
		t.Fatalf("workflow error = %v, want a budget breach", err)
	}
	if got, want := st.State, modelfleet.StateRolledBack; got != want {
		t.Errorf("state = %q, want %q", got, want)
	}
	last := strings.Join(h.awaited[len(h.awaited)-1], ",")
	switch variant {
	case "legacy wave by wave":
		if len(h.rollback) != 2 || strings.Join(h.rollback[0], ",") != "f1,f2,f3" || strings.Join(h.rollback[1], ",") != "c1" {
			t.Errorf("rollback order = %v, want fleet then canary", h.rollback)
		}
		return
	case "restore then await":
		if len(h.restores) != 0 || last != "c1,f1,f2,f3" {
			t.Errorf("restores %v, last wait for %s: want RollbackSites, then one AwaitConverged for every touched site", h.restores, last)
		}
	default:
		// The wait for the restored sites is the restore's own: the last
		// AwaitConverged is the fleet wave's step.
		if len(h.restores) != 1 || last != "f1,f2,f3" {
			t.Fatalf("restores %v, last wait for %s: want one RollbackAndAwait and no AwaitConverged after it", h.restores, last)
		}
		if r := h.restores[0]; r.Release != modelfleet.ReleaseWorkflowID(ref) || r.Model != ref.Name || r.Version != ref.Version || r.Timeout != ConvergeTimeout {
			t.Errorf("restore request %+v, want release %s, model %s, version %s, timeout %s", r, modelfleet.ReleaseWorkflowID(ref), ref.Name, ref.Version, ConvergeTimeout)
		}
	}
	if len(h.rollback) != 1 || strings.Join(h.rollback[0], ",") != "c1,f1,f2,f3" {
		t.Errorf("rollbacks = %v, want every touched site in one step", h.rollback)
	}
	for _, w := range st.Waves {
		if w.State != modelfleet.SiteRolledBack {
			t.Errorf("wave %s = %q, want rolled-back", w.Name, w.State)
		}
	}
	for _, site := range st.Sites {
		want := modelfleet.SiteRolledBack
		if h.failing[site.Site] != "" {
			want = modelfleet.SiteFailed // its restore failed too
		}
		if site.State != want {
			t.Errorf("site %s = %q after the rollback, want %q", site.Site, site.State, want)
		}
	}
}

func TestApprovalGate(t *testing.T) {
	policy := twoWaves + "approval: {after: [canary], timeout: 1h}\n"
	t.Run("approved", func(t *testing.T) {
		h := newHarness(t, policy, sites("c1"), sites("f1"))
		var mid modelfleet.ReleaseStatus
		h.env.RegisterDelayedCallback(func() { mid = h.status() }, 40*time.Minute)
		h.signal(45*time.Minute, modelfleet.SignalApprove, "alice")
		st, err := h.run()
		if err != nil {
			t.Fatal(err)
		}
		if mid.State != modelfleet.StateAwaitingApproval || mid.Gate == nil || mid.Gate.After != "canary" {
			t.Errorf("mid-gate status = %q gate %+v", mid.State, mid.Gate)
		}
		if st.State != modelfleet.StateSucceeded || len(st.Controls) != 1 || st.Controls[0].By != "alice" || st.Controls[0].Wave != "canary" {
			t.Errorf("final = %q controls %+v, want succeeded with alice's approval recorded", st.State, st.Controls)
		}
	})
	t.Run("timeout aborts", func(t *testing.T) {
		h := newHarness(t, policy, sites("c1"), sites("f1"))
		st, err := h.run()
		if err != nil {
			t.Fatal(err)
		}
		if st.State != modelfleet.StateAborted || !strings.Contains(st.Reason, "no approval") {
			t.Errorf("state = %q %q, want aborted for no approval", st.State, st.Reason)
		}
		if len(h.rollback) != 0 || strings.Join(h.finished, ",") != "c1" {
			t.Errorf("abort must keep traffic: rollback %v finished %v", h.rollback, h.finished)
		}
	})
	t.Run("timeout proceeds", func(t *testing.T) {
		h := newHarness(t, twoWaves+"approval: {after: [canary], timeout: 1h, onTimeout: proceed}\n", sites("c1"), sites("f1"))
		st, err := h.run()
		if err != nil || st.State != modelfleet.StateSucceeded {
			t.Fatalf("state = %q err %v, want succeeded", st.State, err)
		}
	})
	t.Run("rejected rolls back", func(t *testing.T) {
		h := newHarness(t, policy, sites("c1"), sites("f1"))
		h.signal(45*time.Minute, modelfleet.SignalReject, "bob")
		st, _ := h.run()
		if st.State != modelfleet.StateRolledBack || !strings.Contains(st.Reason, "rejected by bob") || len(h.rollback) != 1 {
			t.Errorf("state = %q %q rollback %v", st.State, st.Reason, h.rollback)
		}
	})
}

func TestControlsMidRollout(t *testing.T) {
	t.Run("pause then resume", func(t *testing.T) {
		h := newHarness(t, twoWaves, sites("c1"), sites("f1"))
		h.signal(5*time.Minute, modelfleet.SignalPause, "carol") // during the first bake
		var mid modelfleet.ReleaseStatus
		h.env.RegisterDelayedCallback(func() { mid = h.status() }, 3*time.Hour)
		h.signal(4*time.Hour, modelfleet.SignalResume, "carol")
		st, err := h.run()
		if err != nil || st.State != modelfleet.StateSucceeded {
			t.Fatalf("state = %q err %v", st.State, err)
		}
		if mid.State != modelfleet.StatePaused || !mid.Paused {
			t.Errorf("mid-pause state = %q paused=%v", mid.State, mid.Paused)
		}
		if len(h.steps) != 4 {
			t.Errorf("steps = %d, want 4", len(h.steps))
		}
	})
	t.Run("abort keeps traffic", func(t *testing.T) {
		h := newHarness(t, twoWaves, sites("c1"), sites("f1"))
		h.signal(15*time.Minute, modelfleet.SignalAbort, "dave") // during the 50% bake
		st, _ := h.run()
		if st.State != modelfleet.StateAborted || len(h.rollback) != 0 || len(h.steps) != 2 {
			t.Errorf("state %q rollback %v steps %d, want aborted after 2 steps, no rollback", st.State, h.rollback, len(h.steps))
		}
	})
	t.Run("rollback", func(t *testing.T) {
		h := newHarness(t, twoWaves, sites("c1"), sites("f1", "f2"))
		h.signal(30*time.Minute+30*time.Second, modelfleet.SignalRollback, "erin") // fleet wave baking
		st, _ := h.run()
		if st.State != modelfleet.StateRolledBack || len(h.rollback) != 1 || len(h.rollback[0]) != 3 {
			t.Fatalf("state %q rollback %v, want all three sites in one step", st.State, h.rollback)
		}
		for _, s := range st.Sites {
			if s.State != modelfleet.SiteRolledBack {
				t.Errorf("site %s = %q, want rolled-back", s.Site, s.State)
			}
		}
	})
	t.Run("skip bake", func(t *testing.T) {
		h := newHarness(t, "waves: [{name: all, bake: 24h}]", sites("s1"))
		h.signal(time.Minute, modelfleet.SignalSkipBake, "frank")
		start := h.env.Now()
		if _, err := h.run(); err != nil {
			t.Fatal(err)
		}
		if took := h.env.Now().Sub(start); took > time.Hour {
			t.Errorf("release took %v of workflow time, want the bake skipped", took)
		}
	})
}

func TestMaintenanceWindowDelaysASite(t *testing.T) {
	// The test environment starts at a fixed time; a window that opens an
	// hour later must hold the site until then.
	var s testsuite.WorkflowTestSuite
	now := s.NewTestWorkflowEnvironment().Now().UTC()
	open := now.Add(time.Hour).Truncate(time.Minute)
	win := &modelfleet.MaintenanceWindow{Schedule: strconv.Itoa(open.Minute()) + " " + strconv.Itoa(open.Hour()) + " * * *", Duration: "30m"}
	h := newHarness(t, "waves: [{name: all}]", []activities.PlannedSite{{ID: "s1", Window: win}, {ID: "s2"}})
	var mid modelfleet.ReleaseStatus
	h.env.RegisterDelayedCallback(func() { mid = h.status() }, 30*time.Minute)
	st, err := h.run()
	if err != nil || st.State != modelfleet.StateSucceeded {
		t.Fatalf("state %q err %v", st.State, err)
	}
	if len(h.steps) != 2 || h.steps[0].Sites[0] != "s2" || h.steps[1].Sites[0] != "s1" {
		t.Fatalf("steps = %+v, want s2 first, s1 when its window opens", h.steps)
	}
	var s1 modelfleet.SiteStatus
	for _, x := range mid.Sites {
		if x.Site == "s1" {
			s1 = x
		}
	}
	if s1.State != modelfleet.SiteWaitingForWindow || mid.Waves[0].WindowUntil == "" {
		t.Errorf("mid status s1 = %+v window %q, want waiting-for-window", s1, mid.Waves[0].WindowUntil)
	}
}

func TestReleaseRejectsAnInvalidModelRef(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Release, workflow.RegisterOptions{Name: modelfleet.ReleaseWorkflowName})
	env.ExecuteWorkflow(modelfleet.ReleaseWorkflowName, modelfleet.ReleaseInput{Model: modelfleet.ModelRef{Name: "../etc", Version: "1"}})
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "model name") {
		t.Fatalf("workflow error = %v, want an invalid model name error", err)
	}
}

func TestLongRolloutContinuesAsNew(t *testing.T) {
	var ids []string
	for i := range 700 {
		ids = append(ids, "s"+strconv.Itoa(i))
	}
	in := modelfleet.ReleaseInput{Model: ref}
	steps, runs := 0, 0
	var last *harness
	for {
		runs++
		if runs > 10 {
			t.Fatal("release never finished")
		}
		h := newHarness(t, "waves: [{name: all, maxConcurrent: 1}]", sites(ids...))
		h.env.ExecuteWorkflow(modelfleet.ReleaseWorkflowName, in)
		steps += len(h.steps)
		last = h
		err := h.env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if !errors.As(err, &can) {
			if err != nil {
				t.Fatalf("run %d: %v", runs, err)
			}
			break
		}
		in = modelfleet.ReleaseInput{}
		if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
			t.Fatal(err)
		}
		if c, err := decodeCheckpoint(in.Resume); err != nil || c == nil || len(c.Remaining)+steps != 700 {
			t.Fatalf("run %d: checkpoint does not carry the rest of the sites", runs)
		}
		if len(h.steps)*eventsPerStep > historyLimit+eventsPerStep {
			t.Errorf("run %d ran %d steps: its history would exceed %d events", runs, len(h.steps), historyLimit)
		}
	}
	if runs < 2 || steps != 700 {
		t.Errorf("runs = %d, steps = %d; want several runs and each of 700 sites stepped once", runs, steps)
	}
	st := last.status()
	if st.State != modelfleet.StateSucceeded || st.Waves[0].Counts[modelfleet.SiteHealthy] != 700 {
		t.Errorf("final = %q counts %v", st.State, st.Waves[0].Counts)
	}
	if len(last.finished) != 700 {
		t.Errorf("leases freed = %d, want every touched site across all runs", len(last.finished))
	}
}
