package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
)

// signedReleases versions signing the validated version (SignRelease)
// between the champion gate and the plan: histories recorded before
// scheduled no such activity.
const signedReleases = "release-signed-statement"

// sign has the validated version's release statement signed, and returns
// nv carrying it and the artifact's size to the sites, which load the
// version only with it. Replaying a history recorded before signing, it
// returns nv unchanged.
func (r *release) sign(ctx workflow.Context, report activities.ValidationReport, nv modelfleet.DesiredVersion) (modelfleet.DesiredVersion, error) {
	if workflow.GetVersion(ctx, signedReleases, workflow.DefaultVersion, 1) < 1 {
		return nv, nil
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			MaximumInterval:        30 * time.Second,
			NonRetryableErrorTypes: []string{"Invalid", "InvalidInput"},
		},
	})
	var env *modelfleet.Envelope
	if err := workflow.ExecuteActivity(actx, cloud.SignRelease, activities.SignRequest{Release: r.id, Report: report}).Get(ctx, &env); err != nil {
		return nv, fmt.Errorf("sign the release statement: %w", err)
	}
	nv.Size, nv.Statement = report.Model.Size, env
	r.status.Signed = env != nil
	return nv, nil
}

// signedWorkloadReleases versions signing the workload version a workload
// release carries (SignWorkloadRelease) between the plan and the first
// wave: histories recorded before scheduled no such activity.
const signedWorkloadReleases = "workload-release-signed-statement"

// signWorkload has the workload release's statement signed and keeps it in
// r.nv, which the steps (and a continued-as-new run's checkpoint) carry.
func (r *release) signWorkload(ctx workflow.Context) error {
	if workflow.GetVersion(ctx, signedWorkloadReleases, workflow.DefaultVersion, 1) < 1 {
		return nil
	}
	var env *modelfleet.Envelope
	req := activities.WorkloadSignRequest{Release: r.id, Model: r.workload.Model, Workload: r.workload.Workload}
	if err := workflow.ExecuteActivity(r.cloudCtx(ctx), cloud.SignWorkloadRelease, req).Get(ctx, &env); err != nil {
		return fmt.Errorf("sign the workload statement: %w", err)
	}
	r.nv.Statement = env
	r.status.Signed = env != nil
	return nil
}
