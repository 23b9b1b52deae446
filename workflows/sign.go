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
