package workflows

import (
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
)

// WorkloadRelease takes one registered workload version alone to the sites
// of the model it calls, with the release engine of Release: the model's
// policy (or the one the input carries) with its waves, maintenance windows,
// approval gates, failure budgets, bakes and criteria, the same controls and
// status query, and the same step, rollback and finish at the sites — under
// the model's lease, so it and a release of the model take turns. The sites
// keep the model versions they serve. There is no validation or champion
// gate (no model version changes), and no traffic steps: a site runs one
// version of a workload at a time, so each batch swaps once, then bakes.
// Its workflow ID is modelfleet.WorkloadReleaseWorkflowID.
func WorkloadRelease(ctx workflow.Context, in modelfleet.WorkloadReleaseInput) (modelfleet.ReleaseStatus, error) {
	r := newRelease(ctx, modelfleet.ReleaseInput{Model: modelfleet.ModelRef{Name: in.Model}}, modelfleet.WorkloadReleaseWorkflowID(in.Model, in.Workload), &in)
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
		r.restore(c)
		return r.end(ctx, r.rollout(ctx, c.NewVersion, c.Wave, c.Remaining))
	}
	if err := validWorkloadRelease(in); err != nil {
		return r.fail(ctx, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", err))
	}
	plan, err := r.plan(ctx, modelfleet.DesiredVersion{})
	if err != nil {
		return r.fail(ctx, err)
	}
	r.planned = plan
	if err := r.signWorkload(ctx); err != nil {
		return r.fail(ctx, err)
	}
	return r.end(ctx, r.rollout(ctx, r.nv, 0, r.planned.Waves[0]))
}

func validWorkloadRelease(in modelfleet.WorkloadReleaseInput) error {
	if err := modelfleet.ValidateName("model name", in.Model); err != nil {
		return err
	}
	_, err := modelfleet.ParseWorkloadRef(in.Workload.String())
	return err
}

// planActivity schedules the plan: PlanWorkloadRelease for a workload
// release, else PlanRollout.
func (r *release) planActivity(ctx workflow.Context, nv modelfleet.DesiredVersion) workflow.Future {
	if w := r.workload; w != nil {
		return workflow.ExecuteActivity(r.cloudCtx(ctx), cloud.PlanWorkloadRelease, activities.WorkloadPlanRequest{
			Model: w.Model, Workload: w.Workload, Policy: w.Policy,
		})
	}
	var version *modelfleet.DesiredVersion
	if workflow.GetVersion(ctx, planChecksDrivers, workflow.DefaultVersion, 1) >= 1 {
		version = &nv
	}
	return workflow.ExecuteActivity(r.cloudCtx(ctx), cloud.PlanRollout, r.in.Model.Name, version)
}

// applyActivity schedules one step of a batch.
func (r *release) applyActivity(ctx workflow.Context, nv modelfleet.DesiredVersion, weight int, batch []string) workflow.Future {
	wave, approver := r.currentWave(), r.approver()
	if w := r.workload; w != nil {
		return workflow.ExecuteActivity(r.cloudCtx(ctx), cloud.ApplyWorkloadStep, activities.WorkloadStep{
			Release: r.id, Model: w.Model, Workload: w.Workload, Sites: batch, Wave: wave, ApprovedBy: approver, Statement: nv.Statement,
		})
	}
	step := nv
	step.Weight = weight
	return workflow.ExecuteActivity(r.cloudCtx(ctx), cloud.ApplyStep, modelfleet.StepRequest{
		Release: r.id, Model: r.in.Model.Name, New: step, Sites: batch, Wave: wave, ApprovedBy: approver,
	})
}

// approver is who approved the release past its last gate, if anyone did.
func (r *release) approver() string {
	return lastAccepted(r.ctl.log, modelfleet.SignalApprove)
}

// steps are a wave's traffic steps; a workload release has one, 100%.
func (r *release) steps(policy []int) []int {
	if r.workload != nil {
		return []int{100}
	}
	return policy
}

// done is a site's reason once the release's last step holds there.
func (r *release) done(nv modelfleet.DesiredVersion) string {
	if r.workload != nil {
		return "running workload " + r.workload.Workload.String()
	}
	return "serving " + nv.Version + " at 100%"
}

// target names what the release brings, for site reasons.
func (r *release) target(nv modelfleet.DesiredVersion) string {
	if r.workload != nil {
		return "workload " + r.workload.Workload.String()
	}
	return nv.Version
}
