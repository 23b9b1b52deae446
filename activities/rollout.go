package activities

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/rollout"
)

// Fleet is what the release activities need of the fleet directory: its
// steps and the model's rollout policy (fleet.Client).
type Fleet interface {
	modelfleet.FleetSteps
	Policy(ctx context.Context, model string) (rollout.Policy, error)
}

// RolloutPlan is a release's plan: its policy and the sites of each wave.
type RolloutPlan struct {
	Policy     rollout.Policy  `json:"policy"`
	Waves      [][]PlannedSite `json:"waves"`
	Unselected []string        `json:"unselected,omitempty"`
}

// PlannedSite is a site as the rollout needs it.
type PlannedSite struct {
	ID     string                        `json:"id"`
	Window *modelfleet.MaintenanceWindow `json:"window,omitempty"`
	// FromStep is the index of the traffic step the site continues from:
	// a site whose maintenance window closed mid-batch waits at its last
	// step for the next window (0: the site has not started).
	FromStep int `json:"fromStep,omitempty"`
}

// PlanRollout reads the model's policy (the default if it has none) and the
// fleet, and assigns sites to waves. With nv (the version being released;
// nil from release workflows older than the check) it also checks the plan
// with the sites' deployment drivers, so a release that cannot fit fails here.
func (a *Cloud) PlanRollout(ctx context.Context, model string, nv *modelfleet.DesiredVersion) (RolloutPlan, error) {
	p, err := a.Fleet.Policy(ctx, model)
	if err != nil {
		return RolloutPlan{}, fmt.Errorf("plan %s: policy: %w", model, err)
	}
	plan, err := a.planWaves(ctx, model, p, nv)
	if err != nil {
		return RolloutPlan{}, err
	}
	if err := a.checkWorkloads(ctx, model, nv, plan); err != nil {
		return RolloutPlan{}, err
	}
	return plan, nil
}

// planWaves assigns the fleet's sites to the waves of policy p, checking
// them with their drivers when nv is set.
func (a *Cloud) planWaves(ctx context.Context, model string, p rollout.Policy, nv *modelfleet.DesiredVersion) (RolloutPlan, error) {
	sites, err := a.Fleet.List(ctx)
	if err != nil {
		return RolloutPlan{}, fmt.Errorf("plan %s: sites: %w", model, err)
	}
	waves, unselected := p.Plan(sites)
	if err := a.checkDrivers(ctx, model, nv, slices.Concat(waves...)); err != nil {
		return RolloutPlan{}, nonRetryableIfInvalid(fmt.Errorf("plan %s: %w", model, err))
	}
	plan := RolloutPlan{Policy: p, Waves: make([][]PlannedSite, len(waves))}
	for i, w := range waves {
		plan.Waves[i] = make([]PlannedSite, len(w))
		for j, s := range w {
			plan.Waves[i][j] = PlannedSite{ID: s.ID, Window: s.Window}
		}
	}
	for _, s := range unselected {
		plan.Unselected = append(plan.Unselected, s.ID)
	}
	return plan, nil
}

// ApplyStep writes one traffic step into the desired state of a batch of
// sites. Sites another release holds make it fail retryably: the release
// waits, serialised behind the other one, while the rest already moved.
func (a *Cloud) ApplyStep(ctx context.Context, req modelfleet.StepRequest) (modelfleet.StepResult, error) {
	req.TraceParent = traceParent(ctx)
	var err error
	if req.Workload, err = a.stepWorkload(ctx, req); err != nil {
		return modelfleet.StepResult{}, err
	}
	if req.WorkloadStatement, err = a.carriedWorkloadStatement(ctx, req); err != nil {
		return modelfleet.StepResult{}, err
	}
	return a.step(ctx, req)
}

// step writes a step; conflicts are retryable (see ApplyStep).
func (a *Cloud) step(ctx context.Context, req modelfleet.StepRequest) (modelfleet.StepResult, error) {
	res, err := a.Fleet.Step(ctx, req)
	if err != nil {
		return res, nonRetryableIfInvalid(err)
	}
	if n := len(res.Conflicts); n > 0 {
		holders := map[string]bool{}
		for _, c := range res.Conflicts {
			holders[c.Holder] = true
		}
		var hs []string
		for h := range holders {
			hs = append(hs, h)
		}
		return res, temporal.NewApplicationError(fmt.Sprintf("%d sites are held by %s; waiting for it to finish", n, strings.Join(hs, ", ")), "SiteLeased")
	}
	return res, nil
}

// AwaitRequest asks to wait until sites converge on a model version.
type AwaitRequest struct {
	Model   string        `json:"model"`
	Version string        `json:"version"`
	Sites   []string      `json:"sites"`
	Timeout time.Duration `json:"timeout"`
	// Poll is how often to check (default 250ms).
	Poll time.Duration `json:"poll,omitempty"`
}

// AwaitConverged waits until every site applied its desired revision or
// failed to, or Timeout passes; sites still pending then are reported as
// such (an offline site converges later, on its own). One activity per batch
// however large: acknowledgements are aggregated by the directory.
//
// While sites are pending only they are read again: at fleet scale a read
// of every site costs the directory a decode of each one's desired and
// reported state, on the gateway the sites are reporting to at that very
// moment. The answer is one read of every site once none is pending (or at
// the deadline), so its figures are of one moment; should that read find a
// site pending again (an agent restarted), the wait goes on.
func (a *Cloud) AwaitConverged(ctx context.Context, req AwaitRequest) (modelfleet.Progress, error) {
	return a.await(ctx, req, true)
}

// await is AwaitConverged. Without figures (a rollback reads none) the
// answer is each site's state as the reads found it — converged, failed
// with its reason, or pending — with no last read of every site.
//
// Reads are req.Poll apart at most (default 250ms), and closer as the
// pending sites and so their reads shrink: four times as long as the last
// read took, at least a fifth of the poll — a wait for the last few of
// 10,000 sites notices them within tens of milliseconds, not a full poll.
func (a *Cloud) await(ctx context.Context, req AwaitRequest, figures bool) (modelfleet.Progress, error) {
	poll := req.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	deadline := time.Now().Add(req.Timeout)
	read := func(sites []string) (modelfleet.Progress, error) {
		// Heartbeat before the read too: at fleet scale one read can take
		// long enough to miss the heartbeat timeout.
		activity.RecordHeartbeat(ctx, "checking")
		p, err := a.Fleet.Progress(ctx, modelfleet.ProgressRequest{Model: req.Model, Version: req.Version, Sites: sites})
		if err == nil {
			activity.RecordHeartbeat(ctx, len(req.Sites)-len(p.Pending))
		}
		return p, err
	}
	// failed holds, without figures, the reason of each site found failed;
	// the sites neither failed nor pending converged.
	failed := map[string]string{}
	pending := req.Sites
	full := true // the next read is of every site
	for {
		sites := pending
		if full {
			sites = req.Sites
		}
		began := time.Now()
		p, err := read(sites)
		if err != nil {
			return p, err
		}
		took := time.Since(began)
		for _, f := range p.Failed {
			failed[f.Site] = f.Reason
		}
		pending = p.Pending
		over := len(pending) == 0 || time.Now().After(deadline)
		switch {
		case over && full:
			return p, nil
		case over && !figures:
			return settled(req.Sites, pending, failed), nil
		case over:
			full = true // the answer: every site at once
			continue
		}
		full = false
		select {
		case <-ctx.Done():
			return modelfleet.Progress{}, ctx.Err()
		case <-time.After(min(poll, max(poll/5, 4*took))):
		}
	}
}

// settled is the progress of sites, in their order, as reads found them:
// pending, failed (with the reason read), or else converged.
func settled(sites, pending []string, failed map[string]string) modelfleet.Progress {
	p := modelfleet.Progress{Converged: []string{}, Pending: []string{}}
	waiting := make(map[string]bool, len(pending))
	for _, s := range pending {
		waiting[s] = true
	}
	for _, s := range sites {
		switch reason, bad := failed[s]; {
		case waiting[s]:
			p.Pending = append(p.Pending, s)
		case bad:
			p.Failed = append(p.Failed, modelfleet.SiteFailure{Site: s, Reason: reason})
		default:
			p.Converged = append(p.Converged, s)
		}
	}
	return p
}

// RollbackSites restores what the release's sites served before it.
func (a *Cloud) RollbackSites(ctx context.Context, req modelfleet.LeaseRequest) (modelfleet.StepResult, error) {
	req.TraceParent = traceParent(ctx)
	res, err := a.Fleet.Rollback(ctx, req)
	return res, nonRetryableIfInvalid(err)
}

// RollbackRequest asks RollbackAndAwait to restore a release's sites and
// wait for them to converge on what they served before it.
type RollbackRequest struct {
	modelfleet.LeaseRequest
	// Version is the release's version, Timeout how long to wait for the
	// sites and Poll how often to check, as in AwaitRequest.
	Version string        `json:"version"`
	Timeout time.Duration `json:"timeout"`
	Poll    time.Duration `json:"poll,omitempty"`
}

// RollbackAndAwait restores what the release's sites served before it
// (RollbackSites), then waits until they applied it, failed to, or Timeout
// passes (AwaitConverged), in one activity: the wait starts as soon as the
// restore is written, with no workflow task and no second activity between
// them — at fleet scale the moment every site is woken at once, when a
// worker sharing the gateway's machine waits longest for its turn. It
// reads no figures (the sites' counters), so it answers from the reads
// that found each site converged or failed, without a last read of every
// site. A retry is safe: restoring a site twice changes nothing, and
// waiting only reads.
func (a *Cloud) RollbackAndAwait(ctx context.Context, req RollbackRequest) (modelfleet.Progress, error) {
	activity.RecordHeartbeat(ctx, "restoring")
	if _, err := a.RollbackSites(ctx, req.LeaseRequest); err != nil {
		return modelfleet.Progress{}, err
	}
	return a.await(ctx, AwaitRequest{Model: req.Model, Version: req.Version, Sites: req.Sites, Timeout: req.Timeout, Poll: req.Poll}, false)
}

// FinishRelease frees the release's site leases.
func (a *Cloud) FinishRelease(ctx context.Context, req modelfleet.LeaseRequest) (modelfleet.StepResult, error) {
	res, err := a.Fleet.Finish(ctx, req)
	return res, nonRetryableIfInvalid(err)
}

// nonRetryableIfInvalid stops Temporal retrying what cannot succeed.
func nonRetryableIfInvalid(err error) error {
	switch modelfleet.ErrorCode(err) {
	case modelfleet.EINVALID, modelfleet.ENOTFOUND:
		return temporal.NewNonRetryableApplicationError(err.Error(), "Invalid", err)
	}
	return err
}

// traceParent renders the activity's span context as a W3C traceparent, to
// travel with the desired state to the sites.
func traceParent(ctx context.Context) string {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier.Get("traceparent")
}

// checkDrivers checks a release of nv to the planned sites with their
// drivers. A nil nv (a release workflow older than the check scheduled the
// activity) checks nothing: it cannot say what the release adds.
func (a *Cloud) checkDrivers(ctx context.Context, model string, nv *modelfleet.DesiredVersion, sites []modelfleet.Site) error {
	if nv == nil || a.Drivers == nil {
		return nil
	}
	return a.Drivers.CheckPlan(ctx, model, *nv, sites)
}
