// Package workflows holds modelfleet's Temporal workflows. Workflow code is
// deterministic: no I/O, wall clock, randomness or goroutines outside the
// SDK; everything that touches the world is an activity.
package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/orchestrator"
)

// ConvergeTimeout is how long a step waits for its sites to apply it; a site
// still pending then (offline) counts against the wave's failure budget and
// converges on its own when it returns.
const ConvergeTimeout = 5 * time.Minute

// maxSiteAttr bounds the ModelfleetSite search attribute: Temporal limits
// search attribute sizes, and a 10,000-site list would exceed them.
const maxSiteAttr = 50

// Release takes one registered model version to the fleet: validate it, then
// roll it out wave by wave as the model's policy says — traffic steps, bake,
// criteria, failure budget, maintenance windows, approval gates — through
// each site's desired state, which the site's agent pulls. A breach rolls
// every touched site back. Its workflow ID is modelfleet.ReleaseWorkflowID,
// so a redelivered registration event cannot start a second release.
func Release(ctx workflow.Context, in modelfleet.ReleaseInput) (modelfleet.ReleaseStatus, error) {
	r := newRelease(ctx, in, modelfleet.ReleaseWorkflowID(in.Model), nil)
	if err := workflow.SetQueryHandler(ctx, modelfleet.StatusQuery, func() (modelfleet.ReleaseStatus, error) { return r.status, nil }); err != nil {
		return r.status, err
	}
	r.listen(ctx)
	r.listenMonitor(ctx)
	c, err := decodeCheckpoint(in.Resume)
	if err != nil {
		return r.fail(ctx, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", err))
	}
	if c != nil {
		// Continued as new: carry on where the previous run stopped.
		r.restore(c)
		return r.end(ctx, r.rollout(ctx, c.NewVersion, c.Wave, c.Remaining))
	}
	if err := in.Model.Validate(); err != nil {
		return r.fail(ctx, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", err))
	}
	report, err := r.validate(ctx)
	if err != nil {
		return r.fail(ctx, err)
	}
	if err := r.championGate(ctx, &r.status.Champion); err != nil {
		return r.end(ctx, err)
	}
	nv := modelfleet.DesiredVersion{Version: in.Model.Version, Digest: report.Model.Digest, Format: report.Model.Format, ArtifactURL: report.Model.ArtifactURL, Features: report.Model.Features, Baseline: report.Baseline}
	// A version served by an external model server carries it to the
	// sites (nil for a built-in format, and in every earlier history).
	if nv.Server, err = modelfleet.ServerOf(&report.Model); err != nil {
		return r.fail(ctx, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", err))
	}
	if nv, err = r.sign(ctx, report, nv); err != nil {
		return r.fail(ctx, err)
	}
	plan, err := r.plan(ctx, nv)
	if err != nil {
		return r.fail(ctx, err)
	}
	r.planned = plan
	r.nv = nv
	return r.end(ctx, r.rollout(ctx, nv, 0, r.planned.Waves[0]))
}

type release struct {
	in modelfleet.ReleaseInput
	id string // the workflow ID: leases at the sites carry it
	// workload is set on a workload-only release (WorkloadRelease): in
	// names the model only, and the steps carry this workload version.
	workload *modelfleet.WorkloadReleaseInput
	status   modelfleet.ReleaseStatus
	index    map[string]int // site id -> position in status.Sites
	planned  activities.RolloutPlan
	wave     int        // current wave, -1 before the first
	touched  [][]string // per wave, sites whose desired state this release changed
	ctl      controls
	nv       modelfleet.DesiredVersion
	events   int // estimated history events of this run's batches
	// baking is the batch in its bake; monitorBreach, set by a monitor
	// verdict on one of its sites, ends the bake and rolls back.
	baking        []string
	monitorBreach string
	// analysis: criteria are judged over each bake window (see analyse);
	// false replaying a history recorded before. windowsPerStep: every
	// step waits for its sites' maintenance windows (see runBatch).
	analysis, windowsPerStep bool
}

func newRelease(ctx workflow.Context, in modelfleet.ReleaseInput, id string, wl *modelfleet.WorkloadReleaseInput) *release {
	r := &release{in: in, id: id, workload: wl, status: modelfleet.ReleaseStatus{Model: in.Model, State: modelfleet.StatePending, Sites: []modelfleet.SiteStatus{}}, index: map[string]int{}}
	r.ctl.keys = in.ControlKeys
	if wl != nil {
		r.status.Workload = &wl.Workload
		r.ctl.keys = wl.ControlKeys
		r.status.Owner = wl.By
	}
	// Before any signal is read: the rules a run applies to controls
	// are decided once, at its start.
	r.ctl.strict = workflow.GetVersion(ctx, signedControls, workflow.DefaultVersion, 1) >= 1
	r.status.StartedAt = stamp(ctx)
	r.analysis = workflow.GetVersion(ctx, bakeWindowAnalysis, workflow.DefaultVersion, 1) >= 1
	r.windowsPerStep = workflow.GetVersion(ctx, windowsPerStep, workflow.DefaultVersion, 1) >= 1
	return r
}

var cloud *activities.Cloud

func (r *release) cloudCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			MaximumInterval:        30 * time.Second,
			NonRetryableErrorTypes: []string{"Invalid", "InvalidInput"},
		},
	})
}

func (r *release) validate(ctx workflow.Context) (activities.ValidationReport, error) {
	r.setState(ctx, modelfleet.StateValidating, "")
	// ValidateModel heartbeats while it runs: a worker killed mid-way is
	// noticed after the heartbeat timeout, and validation runs again on
	// another (chaos found a release in `validating` for minutes while the
	// worker kept being killed, each attempt waiting out a one-minute
	// timeout). Retries are bounded in time, not in count: each death of a
	// worker costs an attempt.
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    10 * time.Minute,
		ScheduleToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:       4 * activities.HeartbeatEvery,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumInterval:        30 * time.Second,
			NonRetryableErrorTypes: []string{"InvalidInput"},
		},
	})
	var report activities.ValidationReport
	if err := workflow.ExecuteActivity(ctx, cloud.ValidateModel, r.in.Model).Get(ctx, &report); err != nil {
		return report, fmt.Errorf("validation could not run: %w", err)
	}
	res := report.Result
	r.status.Validation = &res
	r.status.Digest = report.Model.Digest
	// The owner as the registry recorded it (the event's copy of the
	// properties is only as trustworthy as its sender).
	r.status.Owner = report.Model.Properties[modelfleet.PropRegisteredBy]
	if !res.Passed {
		msg := res.Note
		if msg == "" {
			msg = fmt.Sprintf("%s %.4f is below the threshold %.4f on %d rows", res.Metric, res.Value, res.Threshold, res.Rows)
		}
		return report, temporal.NewNonRetryableApplicationError("validation failed: "+msg, "ValidationFailed", nil)
	}
	return report, nil
}

// planChecksDrivers versions passing the release's version to PlanRollout,
// which then checks the plan with the sites' deployment drivers (replay
// safety: recorded histories scheduled it with the model name only).
const planChecksDrivers = "release-plan-checks-drivers"

func (r *release) plan(ctx workflow.Context, nv modelfleet.DesiredVersion) (activities.RolloutPlan, error) {
	var plan activities.RolloutPlan
	if err := r.planActivity(ctx, nv).Get(ctx, &plan); err != nil {
		return plan, fmt.Errorf("plan rollout: %w", err)
	}
	total := 0
	var ids []string
	r.touched = make([][]string, len(plan.Waves))
	r.wave = -1
	for i, sites := range plan.Waves {
		w := plan.Policy.Waves[i]
		r.status.Waves = append(r.status.Waves, modelfleet.WaveStatus{
			Name: w.Name, State: modelfleet.SitePending, Sites: len(sites), Counts: map[string]int{modelfleet.SitePending: len(sites)},
			Budget: w.FailureBudget.Allowed(len(sites)),
		})
		for _, s := range sites {
			r.index[s.ID] = len(r.status.Sites)
			r.status.Sites = append(r.status.Sites, modelfleet.SiteStatus{Site: s.ID, Wave: w.Name, State: modelfleet.SitePending, UpdatedAt: stamp(ctx)})
			ids = append(ids, s.ID)
		}
		total += len(sites)
	}
	if total == 0 {
		return plan, temporal.NewNonRetryableApplicationError(fmt.Sprintf("no site matches any wave of the policy (%d sites unselected)", len(plan.Unselected)), "NoSites", nil)
	}
	if r.windowsPerStep {
		if err := checkWindowRoom(plan); err != nil {
			return plan, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", err)
		}
	}
	if len(ids) <= maxSiteAttr {
		_ = workflow.UpsertTypedSearchAttributes(ctx, orchestrator.SitesAttr.ValueSet(ids))
	}
	return plan, nil
}

// rollout runs the waves in order from wave first (whose sites not yet
// changed are remaining), with the approval gates between them.
func (r *release) rollout(ctx workflow.Context, nv modelfleet.DesiredVersion, first int, remaining []activities.PlannedSite) error {
	if r.status.State != modelfleet.StatePaused && r.status.State != modelfleet.StateAwaitingApproval {
		r.setState(ctx, modelfleet.StateDeploying, "")
	}
	p := r.planned.Policy
	for i := first; i < len(r.planned.Waves); i++ {
		sites := r.planned.Waves[i]
		if i == first {
			sites = remaining
		}
		r.wave = i
		ws := &r.status.Waves[i]
		if len(r.planned.Waves[i]) == 0 {
			ws.State, ws.Reason = modelfleet.SiteHealthy, "no sites in this wave"
			continue
		}
		if err := r.runWave(ctx, i, sites, nv); err != nil {
			return err
		}
		ws.State = modelfleet.SiteHealthy
		if p.GateAfter(p.Waves[i].Name) && i < len(r.planned.Waves)-1 {
			if err := r.awaitApproval(ctx, p.Waves[i].Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// runWave changes the wave's sites batch by batch (at most MaxConcurrent at
// once, each only inside its maintenance window) through every traffic step.
func (r *release) runWave(ctx workflow.Context, i int, sites []activities.PlannedSite, nv modelfleet.DesiredVersion) error {
	w := r.planned.Policy.Waves[i]
	ws := &r.status.Waves[i]
	ws.State = modelfleet.SiteDeploying
	remaining := sites
	for len(remaining) > 0 {
		if err := r.checkpoint(ctx); err != nil {
			return err
		}
		var room time.Duration
		if r.windowsPerStep {
			room = w.WindowRoom()
		}
		batch, rest, opens := nextBatch(workflow.Now(ctx), remaining, w.MaxConcurrent, room)
		if len(batch) == 0 {
			ws.WindowUntil = opens.UTC().Format(time.RFC3339)
			for _, s := range remaining {
				r.setSite(ctx, s.ID, modelfleet.SiteWaitingForWindow, "maintenance window closed; opens "+ws.WindowUntil)
			}
			if _, err := workflow.AwaitWithTimeout(ctx, opens.Sub(workflow.Now(ctx)), r.ctl.stopping); err != nil {
				return err
			}
			continue
		}
		ws.WindowUntil = ""
		held, err := r.runBatch(ctx, i, batch, nv)
		if err != nil {
			return err
		}
		remaining = append(rest, held...)
		if len(remaining) > 0 && r.historyFull(ctx) {
			return r.continueAsNew(ctx, i, remaining)
		}
	}
	return nil
}

// runBatch takes a batch through the wave's traffic steps, from the step
// its sites reached (a batch of sites held back by their windows resumes
// there). Sites whose maintenance window has no room for a later step are
// returned held, to be batched again when their window opens.
func (r *release) runBatch(ctx workflow.Context, i int, planned []activities.PlannedSite, nv modelfleet.DesiredVersion) (held []activities.PlannedSite, err error) {
	w := r.planned.Policy.Waves[i]
	ws := &r.status.Waves[i]
	batch := ids(planned)
	first := planned[0].FromStep
	if first == 0 {
		r.touched[i] = append(r.touched[i], batch...)
	}
	steps := r.steps(w.Steps)
	r.events += eventsPerStep * len(steps)
	analyse := r.analysis && w.Criteria.Any()
	var reference []int64
	if analyse && w.Criteria.MaxPredictionShift > 0 {
		// What the sites predicted before this batch's first step: the
		// prediction shift's reference once the replaced versions stop
		// predicting beside the new one (the 100% step).
		pre, err := r.await(ctx, batch, 0)
		if err != nil {
			return nil, fmt.Errorf("wave %q: read the sites' predictions: %w", w.Name, err)
		}
		r.events += eventsPerRead
		if c := pre.Counters; c != nil {
			reference = make([]int64, len(c.Predictions))
			for b := range reference {
				reference[b] = c.Predictions[b]
				if len(c.Replaced) == len(c.Predictions) {
					reference[b] += c.Replaced[b]
				}
			}
		}
	}
	for k := first; k < len(steps); k++ {
		weight := steps[k]
		if err := r.checkpoint(ctx); err != nil {
			return nil, err
		}
		if r.windowsPerStep && k > first {
			var wait []activities.PlannedSite
			planned, wait = r.holdOutsideWindows(ctx, only(planned, batch), k, w.WindowRoom())
			held = append(held, wait...)
			if batch = ids(planned); len(batch) == 0 {
				return held, nil
			}
		}
		ws.Weight = weight
		for _, s := range batch {
			r.setSite(ctx, s, modelfleet.SiteDeploying, fmt.Sprintf("%s at %d%%", r.target(nv), weight))
		}
		var res modelfleet.StepResult
		if err := r.applyActivity(ctx, nv, weight, batch).Get(ctx, &res); err != nil {
			return nil, fmt.Errorf("wave %q: apply %d%%: %w", w.Name, weight, err)
		}
		prog, err := r.await(ctx, batch, ConvergeTimeout)
		if err != nil {
			return nil, fmt.Errorf("wave %q: await sites: %w", w.Name, err)
		}
		var failed []string
		for _, f := range prog.Failed {
			r.setSite(ctx, f.Site, modelfleet.SiteFailed, f.Reason)
			failed = append(failed, f.Site)
		}
		for _, s := range prog.Pending {
			r.setSite(ctx, s, modelfleet.SiteFailed, fmt.Sprintf("did not apply %d%% within %s (offline?)", weight, ConvergeTimeout))
			failed = append(failed, s)
		}
		if len(failed) > 0 {
			ws.Failed += len(failed)
			batch = without(batch, failed)
			if ws.Failed > ws.Budget {
				return nil, breach("wave %q: %d sites failed, over its failure budget of %d", w.Name, ws.Failed, ws.Budget)
			}
		}
		if analyse {
			if err := r.analyse(ctx, i, batch, weight, prog.Counters, reference); err != nil {
				return nil, err
			}
			continue
		}
		if err := r.bake(ctx, i, batch); err != nil {
			return nil, err
		}
		if err := r.checkCriteria(ctx, i, batch); err != nil {
			return nil, err
		}
	}
	for _, s := range batch {
		r.setSite(ctx, s, modelfleet.SiteHealthy, r.done(nv))
	}
	return held, nil
}

// only keeps the planned sites whose IDs are in keep (failed sites drop
// out of a batch between steps).
func only(planned []activities.PlannedSite, keep []string) []activities.PlannedSite {
	k := make(map[string]bool, len(keep))
	for _, id := range keep {
		k[id] = true
	}
	var out []activities.PlannedSite
	for _, s := range planned {
		if k[s.ID] {
			out = append(out, s)
		}
	}
	return out
}

func (r *release) await(ctx workflow.Context, sites []string, timeout time.Duration) (modelfleet.Progress, error) {
	var p modelfleet.Progress
	err := workflow.ExecuteActivity(r.awaitCtx(ctx, timeout), cloud.AwaitConverged, activities.AwaitRequest{
		Model: r.in.Model.Name, Version: r.in.Model.Version, Sites: sites, Timeout: timeout,
	}).Get(ctx, &p)
	return p, err
}

// awaitCtx is the options of an activity that waits up to timeout for
// sites, heartbeating.
func (r *release) awaitCtx(ctx workflow.Context, timeout time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: timeout + time.Minute,
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: 30 * time.Second},
	})
}

func (r *release) bake(ctx workflow.Context, i int, batch []string) error {
	d := r.planned.Policy.Waves[i].Bake.Std()
	if d <= 0 || len(batch) == 0 {
		return nil
	}
	_, err := r.bakeFor(ctx, i, batch, d)
	return err
}

// bakeFor holds the batch for d, ended early by a skip-bake (skipped), an
// operator stopping the release, or a monitor breach (an error).
func (r *release) bakeFor(ctx workflow.Context, i int, batch []string, d time.Duration) (skipped bool, err error) {
	ws := &r.status.Waves[i]
	ws.BakeUntil = workflow.Now(ctx).Add(d).UTC().Format(time.RFC3339)
	for _, s := range batch {
		r.setSite(ctx, s, modelfleet.SiteBaking, "bake until "+ws.BakeUntil)
	}
	r.baking = batch
	_, err = workflow.AwaitWithTimeout(ctx, d, func() bool { return r.ctl.skipBake || r.ctl.stopping() || r.monitorBreach != "" })
	r.baking = nil
	skipped = r.ctl.skipBake
	r.ctl.skipBake = false
	ws.BakeUntil = ""
	if err != nil {
		return skipped, err
	}
	if r.monitorBreach != "" {
		return skipped, breach("wave %q: %s", r.planned.Policy.Waves[i].Name, r.monitorBreach)
	}
	return skipped, r.checkpoint(ctx)
}

// checkCriteria compares the new version's live figures at the batch's
// sites with the wave's criteria.
func (r *release) checkCriteria(ctx workflow.Context, i int, batch []string) error {
	c := r.planned.Policy.Waves[i].Criteria
	if (c.MaxErrorRate == 0 && c.MaxP99LatencyMs == 0 && c.MaxPredictionShift == 0 && c.MinQuality == 0) || len(batch) == 0 {
		return nil
	}
	p, err := r.await(ctx, batch, 0)
	if err != nil {
		return err
	}
	name := r.planned.Policy.Waves[i].Name
	if c.MaxErrorRate > 0 && p.Requests > 0 {
		if rate := float64(p.Errors) / float64(p.Requests); rate > c.MaxErrorRate {
			return breach("wave %q: error rate %.4f over %d requests exceeds %.4f", name, rate, p.Requests, c.MaxErrorRate)
		}
	}
	if c.MaxP99LatencyMs > 0 && p.P99LatencyMs > c.MaxP99LatencyMs {
		return breach("wave %q: p99 latency %.1f ms exceeds %.1f ms", name, p.P99LatencyMs, c.MaxP99LatencyMs)
	}
	if c.MaxPredictionShift > 0 && p.PredictionShift > c.MaxPredictionShift {
		return breach("wave %q: prediction shift %.3f (Jensen–Shannon distance of %s's %d predictions from the versions it replaces) exceeds %.3f",
			name, p.PredictionShift, r.in.Model.Version, p.ShiftSamples, c.MaxPredictionShift)
	}
	if res := p.Residuals; c.MinQuality > 0 && res != nil && res.N >= modelfleet.MinQualitySamples {
		if r2, ok := res.R2(); ok && r2 < c.MinQuality {
			return breach("wave %q: R² %.3f of %s over %d predictions whose values came back is below %.3f", name, r2, r.in.Model.Version, res.N, c.MinQuality)
		}
	} else if c.MinQuality > 0 && p.Labelled >= modelfleet.MinQualitySamples {
		if acc := float64(p.Correct) / float64(p.Labelled); acc < c.MinQuality {
			return breach("wave %q: accuracy %.3f of %s over %d labelled predictions is below %.3f", name, acc, r.in.Model.Version, p.Labelled, c.MinQuality)
		}
	}
	return nil
}

func (r *release) awaitApproval(ctx workflow.Context, after string) error {
	a := r.planned.Policy.Approval
	now := workflow.Now(ctx)
	r.status.Gate = &modelfleet.GateStatus{
		After: after, Since: now.UTC().Format(time.RFC3339), Deadline: now.Add(a.Timeout.Std()).UTC().Format(time.RFC3339), OnTimeout: a.OnTimeout,
		Needed: a.Count, Distinct: a.Distinct, SelfApprovalForbidden: a.ForbidSelfApproval,
	}
	r.setState(ctx, modelfleet.StateAwaitingApproval, "waiting for approval after wave "+after)
	ok, err := workflow.AwaitWithTimeout(ctx, a.Timeout.Std(), func() bool { return r.ctl.approved || r.ctl.stopping() })
	approved := r.ctl.approved
	r.closeGate()
	if err != nil {
		return err
	}
	if ok && approved {
		r.ctl.approved = false
		r.setState(ctx, modelfleet.StateDeploying, "")
		return nil
	}
	if ok {
		return r.checkpoint(ctx)
	}
	if a.OnTimeout == "proceed" {
		r.ctl.log = append(r.ctl.log, modelfleet.ControlRecord{Action: modelfleet.SignalApprove, By: "timeout", Reason: "approval timed out; policy says proceed", At: stamp(ctx), Wave: after})
		r.status.Controls = r.ctl.log
		r.setState(ctx, modelfleet.StateDeploying, "")
		return nil
	}
	return errAborted{reason: fmt.Sprintf("no approval after wave %q within %s", after, a.Timeout.Std())}
}

// checkpoint is where operator controls take effect: hold while paused,
// stop on abort, rollback or reject.
func (r *release) checkpoint(ctx workflow.Context) error {
	if r.ctl.paused && !r.ctl.stopping() {
		prev := r.status.State
		r.setState(ctx, modelfleet.StatePaused, "paused by "+lastBy(r.ctl.log, modelfleet.SignalPause))
		if err := workflow.Await(ctx, func() bool { return !r.ctl.paused || r.ctl.stopping() }); err != nil {
			return err
		}
		r.setState(ctx, prev, "")
	}
	switch {
	case r.ctl.rollback:
		return errRollback{reason: "rollback requested by " + lastBy(r.ctl.log, modelfleet.SignalRollback)}
	case r.ctl.rejected:
		return errRollback{reason: "rejected by " + lastBy(r.ctl.log, modelfleet.SignalReject)}
	case r.ctl.aborted:
		return errAborted{reason: "aborted by " + lastBy(r.ctl.log, modelfleet.SignalAbort)}
	}
	return nil
}

// end settles the release: free the leases on success or abort, restore
// every touched site on a breach, a rollback or a rejection.
func (r *release) end(ctx workflow.Context, err error) (modelfleet.ReleaseStatus, error) {
	var ab errAborted
	var rb errRollback
	var br *temporal.ApplicationError
	switch {
	case err == nil:
		if ferr := r.freeLeases(ctx, cloud.FinishRelease); ferr != nil {
			return r.fail(ctx, ferr)
		}
		r.setState(ctx, modelfleet.StateSucceeded, "")
		return r.status, nil
	case errors.As(err, &ab):
		if ferr := r.freeLeases(ctx, cloud.FinishRelease); ferr != nil {
			return r.fail(ctx, ferr)
		}
		r.setState(ctx, modelfleet.StateAborted, ab.reason+"; sites keep their current traffic")
		return r.status, nil
	case errors.As(err, &rb):
		if rerr := r.rollback(ctx, rb.reason); rerr != nil {
			return r.fail(ctx, rerr)
		}
		return r.status, nil
	case workflow.IsContinueAsNewError(err):
		return r.status, err
	case errors.As(err, &br) && br.Type() == "Breach":
		if rerr := r.rollback(ctx, br.Error()); rerr != nil {
			return r.fail(ctx, rerr)
		}
		return r.status, err
	default:
		return r.fail(ctx, err)
	}
}

// rollback restores every touched site; a site that is offline is restored
// when it returns (its desired state says so).
func (r *release) rollback(ctx workflow.Context, reason string) error {
	r.setState(ctx, modelfleet.StateRollingBack, reason)
	// Rollback must happen even if the workflow is being cancelled.
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	if workflow.GetVersion(ctx, rollbackAtOnce, workflow.DefaultVersion, 1) >= 1 {
		return r.rollbackAll(ctx, reason)
	}
	for i := len(r.touched) - 1; i >= 0; i-- {
		sites := r.touched[i]
		if len(sites) == 0 {
			continue
		}
		var res modelfleet.StepResult
		if err := workflow.ExecuteActivity(r.cloudCtx(ctx), cloud.RollbackSites, modelfleet.LeaseRequest{Release: r.id, Model: r.in.Model.Name, Sites: sites}).Get(ctx, &res); err != nil {
			return fmt.Errorf("rollback wave %q: %w", r.status.Waves[i].Name, err)
		}
		p, err := r.await(ctx, sites, ConvergeTimeout)
		if err != nil {
			return fmt.Errorf("rollback wave %q: %w", r.status.Waves[i].Name, err)
		}
		for _, s := range p.Converged {
			r.setSite(ctx, s, modelfleet.SiteRolledBack, "restored its previous versions")
		}
		for _, s := range p.Pending {
			r.setSite(ctx, s, modelfleet.SiteRolledBack, "restore pending: applies when the site reconnects")
		}
		for _, f := range p.Failed {
			r.setSite(ctx, f.Site, modelfleet.SiteFailed, "restore failed: "+f.Reason)
		}
		r.status.Waves[i].State = modelfleet.SiteRolledBack
	}
	r.setState(ctx, modelfleet.StateRolledBack, reason)
	return nil
}

// freeLeases frees every touched site's lease through the given activity.
func (r *release) freeLeases(ctx workflow.Context, act any) error {
	var all []string
	for _, s := range r.touched {
		all = append(all, s...)
	}
	if len(all) == 0 {
		return nil
	}
	var res modelfleet.StepResult
	return workflow.ExecuteActivity(r.cloudCtx(ctx), act, modelfleet.LeaseRequest{Release: r.id, Model: r.in.Model.Name, Sites: all}).Get(ctx, &res)
}

func (r *release) fail(ctx workflow.Context, err error) (modelfleet.ReleaseStatus, error) {
	r.setState(ctx, modelfleet.StateFailed, rootMessage(err))
	return r.status, err
}

func (r *release) setState(ctx workflow.Context, state, reason string) {
	r.status.State, r.status.Reason, r.status.UpdatedAt = state, reason, stamp(ctx)
	// Search attributes are an index for the UI; failing to update one must
	// not fail the release.
	if r.workload != nil {
		_ = workflow.UpsertTypedSearchAttributes(ctx,
			orchestrator.ModelAttr.ValueSet(r.in.Model.Name),
			orchestrator.WorkloadAttr.ValueSet(r.workload.Workload.String()),
			orchestrator.StageAttr.ValueSet(state))
		return
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx,
		orchestrator.ModelAttr.ValueSet(r.in.Model.Name),
		orchestrator.VersionAttr.ValueSet(r.in.Model.Version),
		orchestrator.StageAttr.ValueSet(state))
}

func (r *release) setSite(ctx workflow.Context, id, state, reason string) {
	i, ok := r.index[id]
	if !ok {
		return
	}
	s := &r.status.Sites[i]
	if s.State != state {
		for w := range r.status.Waves {
			if r.status.Waves[w].Name == s.Wave {
				r.status.Waves[w].Counts[s.State]--
				r.status.Waves[w].Counts[state]++
			}
		}
	}
	s.State, s.Reason, s.UpdatedAt = state, reason, stamp(ctx)
}

func (r *release) currentWave() string {
	if r.wave >= 0 && r.wave < len(r.status.Waves) {
		return r.status.Waves[r.wave].Name
	}
	return ""
}

// breach is a wave failing its criteria or budget: the release rolls back.
func breach(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), "Breach", nil)
}

type errAborted struct{ reason string }

func (e errAborted) Error() string { return e.reason }

type errRollback struct{ reason string }

func (e errRollback) Error() string { return e.reason }

// lastBy is who sent the last control of action the release accepted.
func lastBy(log []modelfleet.ControlRecord, action string) string {
	if by := lastAccepted(log, action); by != "" {
		return by
	}
	return "an operator"
}

func lastAccepted(log []modelfleet.ControlRecord, action string) string {
	for i := len(log) - 1; i >= 0; i-- {
		if log[i].Action == action && log[i].Refused == "" {
			return log[i].By
		}
	}
	return ""
}

func ids(sites []activities.PlannedSite) []string {
	out := make([]string, len(sites))
	for i, s := range sites {
		out[i] = s.ID
	}
	return out
}

func without(all, drop []string) []string {
	d := make(map[string]bool, len(drop))
	for _, s := range drop {
		d[s] = true
	}
	var out []string
	for _, s := range all {
		if !d[s] {
			out = append(out, s)
		}
	}
	return out
}

// stamp is workflow time (deterministic on replay), not the wall clock.
func stamp(ctx workflow.Context) string { return workflow.Now(ctx).UTC().Format(time.RFC3339) }

// rootMessage digs the innermost application error message out of the
// activity/workflow error wrappers, which is what an operator needs to read.
func rootMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Error()
	}
	return err.Error()
}
