package activities

import (
	"context"
	"fmt"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/rollout"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// WorkloadPlanRequest asks for the plan of a workload-only release.
type WorkloadPlanRequest struct {
	Model    string                 `json:"model"`
	Workload modelfleet.WorkloadRef `json:"workload"`
	// Policy is a rollout policy document used instead of the model's.
	Policy string `json:"policy,omitempty"`
}

// PlanWorkloadRelease plans the release of one workload version alone: the
// model's rollout policy (or req.Policy) assigns the sites to waves, and
// every planned site must serve a version of the model and every version it
// serves must take the features the workload produces — the workload feeds
// the router, which splits its requests between them. Anything else fails
// the plan, non-retryably, before any site changes, naming each pair. The
// deployment drivers are not asked: the model versions do not change.
func (a *Cloud) PlanWorkloadRelease(ctx context.Context, req WorkloadPlanRequest) (RolloutPlan, error) {
	subject := fmt.Sprintf("release of workload %s", req.Workload)
	rec, err := a.workloadRecord(ctx, req.Model, req.Workload)
	if err != nil {
		return RolloutPlan{}, nonRetryableIfInvalid(err)
	}
	if err := a.validateModule(ctx, rec, nil); err != nil {
		return RolloutPlan{}, nonRetryableIfInvalid(err)
	}
	var p rollout.Policy
	if req.Policy != "" {
		if p, err = rollout.Parse([]byte(req.Policy)); err != nil {
			return RolloutPlan{}, nonRetryableIfInvalid(fmt.Errorf("%s: policy: %w", subject, err))
		}
	} else if p, err = a.Fleet.Policy(ctx, req.Model); err != nil {
		return RolloutPlan{}, fmt.Errorf("%s: policy: %w", subject, err)
	}
	plan, err := a.planWaves(ctx, req.Model, p, nil)
	if err != nil {
		return RolloutPlan{}, err
	}
	var sites []string
	for _, w := range plan.Waves {
		for _, s := range w {
			sites = append(sites, s.ID)
		}
	}
	var pairings []modelfleet.SitePairing
	for len(sites) > 0 {
		n := min(len(sites), pairingBatch)
		ps, err := a.Fleet.Pairings(ctx, modelfleet.PairingRequest{Model: req.Model, Sites: sites[:n]})
		if err != nil {
			return RolloutPlan{}, fmt.Errorf("%s: pairings: %w", subject, err)
		}
		pairings, sites = append(pairings, ps...), sites[n:]
	}
	return plan, nonRetryableIfInvalid(CheckWorkloadPairings(req.Model, rec, pairings))
}

// CheckWorkloadPairings checks a workload version released alone with every
// version of model each site serves (the desired split, which the release
// leaves as it is). A site serving none of model is refused too: the
// workload would have nothing to call there.
func CheckWorkloadPairings(model string, w modelfleet.WorkloadRecord, sites []modelfleet.SitePairing) error {
	subject := fmt.Sprintf("release of workload %s", w.Ref())
	man := manifestOf(w.Name, w.Version, w.Model, w.Features)
	c := newPairChecks()
	var unserved []string
	for _, s := range sites {
		if len(s.Versions) == 0 {
			unserved = append(unserved, s.Site)
		}
		for _, v := range s.Versions {
			c.check(s.Site, man, modelfleet.ModelRef{Name: model, Version: v.Version}, v.Features, "")
		}
	}
	if err := c.err(subject); err != nil {
		return err
	}
	if len(unserved) > 0 {
		return modelfleet.Errorf(modelfleet.EINVALID, "%s refused before any site changed: %d planned sites serve no version of model %q (e.g. %q); release a model version there first, or select fewer sites in the policy",
			subject, len(unserved), model, unserved[0])
	}
	return nil
}

// WorkloadStep is one step of a workload-only release to a batch of sites.
type WorkloadStep struct {
	Release  string                 `json:"release"`
	Model    string                 `json:"model"`
	Workload modelfleet.WorkloadRef `json:"workload"`
	Sites    []string               `json:"sites"`
	// Wave and ApprovedBy are recorded with the change (modelfleet.StepRequest).
	Wave       string `json:"wave,omitempty"`
	ApprovedBy string `json:"approvedBy,omitempty"`
	// Statement is the workload version's signed statement
	// (SignWorkloadRelease), for the sites.
	Statement *modelfleet.Envelope `json:"statement,omitempty"`
}

// ApplyWorkloadStep writes the workload version into the desired state of a
// batch of sites, under the model's lease, leaving the model's versions as
// they are. Conflicts are retryable, as in ApplyStep.
func (a *Cloud) ApplyWorkloadStep(ctx context.Context, req WorkloadStep) (modelfleet.StepResult, error) {
	rec, err := a.workloadRecord(ctx, req.Model, req.Workload)
	if err != nil {
		return modelfleet.StepResult{}, nonRetryableIfInvalid(err)
	}
	return a.step(ctx, modelfleet.StepRequest{Release: req.Release, Model: req.Model, Sites: req.Sites, Workload: &rec, TraceParent: traceParent(ctx),
		Wave: req.Wave, ApprovedBy: req.ApprovedBy, WorkloadStatement: req.Statement})
}

// workloadRecord fetches a registered workload version that calls model.
func (a *Cloud) workloadRecord(ctx context.Context, model string, ref modelfleet.WorkloadRef) (modelfleet.WorkloadRecord, error) {
	if _, err := modelfleet.ParseWorkloadRef(ref.String()); err != nil {
		return modelfleet.WorkloadRecord{}, err
	}
	wf := a.Fleet
	rec, err := wf.Workload(ctx, ref.Name, ref.Version)
	if modelfleet.ErrorCode(err) == modelfleet.ENOTFOUND {
		return rec, modelfleet.Errorf(modelfleet.EINVALID, "workload %s is not registered (modelfleet workload register)", ref)
	}
	if err != nil {
		return rec, fmt.Errorf("workload %s: %w", ref, err)
	}
	if rec.Model != model {
		return rec, &spec.IncompatibleError{Workload: ref.String(), Model: model,
			Reasons: []string{fmt.Sprintf("the workload calls model %q", rec.Model)}}
	}
	return rec, nil
}
