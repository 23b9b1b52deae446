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
	"github.com/modelfleet/modelfleet/edge"
)

// Release takes one registered model version to the fleet: it validates the
// model, then deploys it to every site through that site's own task queue.
// Its workflow ID is modelfleet.ReleaseWorkflowID, so a redelivered
// registration event cannot start a second release.
func Release(ctx workflow.Context, in ReleaseInput) (ReleaseStatus, error) {
	r := &release{in: in, status: ReleaseStatus{Model: in.Model, State: StatePending, Sites: []SiteStatus{}}}
	r.status.StartedAt = stamp(ctx)
	if err := workflow.SetQueryHandler(ctx, StatusQuery, func() (ReleaseStatus, error) {
		return r.status, nil
	}); err != nil {
		return r.status, err
	}
	if err := in.Model.Validate(); err != nil {
		return r.fail(ctx, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", err))
	}
	report, err := r.validate(ctx)
	if err != nil {
		return r.fail(ctx, err)
	}
	if err := r.deploy(ctx, report.Model); err != nil {
		return r.fail(ctx, err)
	}
	r.setState(ctx, StateSucceeded, "")
	return r.status, nil
}

type release struct {
	in     ReleaseInput
	status ReleaseStatus
}

var cloud *activities.Cloud
var site *activities.Site

func (r *release) validate(ctx workflow.Context) (activities.ValidationReport, error) {
	r.setState(ctx, StateValidating, "")
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts:        5,
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
	if !res.Passed {
		msg := res.Note
		if msg == "" {
			msg = fmt.Sprintf("%s %.4f is below the threshold %.4f on %d rows", res.Metric, res.Value, res.Threshold, res.Rows)
		}
		return report, temporal.NewNonRetryableApplicationError("validation failed: "+msg, "ValidationFailed", nil)
	}
	return report, nil
}

func (r *release) deploy(ctx workflow.Context, m modelfleet.Model) error {
	r.setState(ctx, StateDeploying, "")
	listCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10},
	})
	var sites []modelfleet.Site
	if err := workflow.ExecuteActivity(listCtx, cloud.ListSites).Get(ctx, &sites); err != nil {
		return fmt.Errorf("list sites: %w", err)
	}
	if len(sites) == 0 {
		return temporal.NewNonRetryableApplicationError("no sites registered: nothing to deploy to", "NoSites", nil)
	}
	ids := make([]string, len(sites))
	for i, s := range sites {
		ids[i] = s.ID
		r.status.Sites = append(r.status.Sites, SiteStatus{Site: s.ID, State: SitePending, UpdatedAt: stamp(ctx)})
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, SitesAttr.ValueSet(ids))

	req := edge.DeployRequest{Model: m.ModelRef, Digest: m.Digest, Format: m.Format, ArtifactURL: m.ArtifactURL, Features: m.Features}
	futures := make([]workflow.Future, len(sites))
	for i, s := range sites {
		// No schedule-to-start timeout: a site that is offline picks the
		// task up when it reconnects (its worker polls outbound only).
		siteCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:           s.TaskQueue,
			StartToCloseTimeout: 10 * time.Minute,
			HeartbeatTimeout:    time.Minute,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval: time.Second,
				MaximumInterval: time.Minute,
				MaximumAttempts: 10,
			},
		})
		r.setSite(ctx, i, SiteDeploying, "")
		futures[i] = workflow.ExecuteActivity(siteCtx, site.DeployModel, req)
	}
	var failed []string
	for i, f := range futures {
		var res edge.DeployResult
		if err := f.Get(ctx, &res); err != nil {
			r.setSite(ctx, i, SiteFailed, rootMessage(err))
			failed = append(failed, sites[i].ID)
			continue
		}
		r.setSite(ctx, i, SiteHealthy, "serving "+m.ModelRef.String())
	}
	if len(failed) > 0 {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("deploy failed at %d of %d sites: %v", len(failed), len(sites), failed), "DeployFailed", nil)
	}
	return nil
}

func (r *release) fail(ctx workflow.Context, err error) (ReleaseStatus, error) {
	r.setState(ctx, StateFailed, rootMessage(err))
	return r.status, err
}

func (r *release) setState(ctx workflow.Context, state, reason string) {
	r.status.State, r.status.Reason, r.status.UpdatedAt = state, reason, stamp(ctx)
	// Search attributes are an index for the UI; failing to update one must
	// not fail the release.
	_ = workflow.UpsertTypedSearchAttributes(ctx,
		ModelAttr.ValueSet(r.in.Model.Name),
		VersionAttr.ValueSet(r.in.Model.Version),
		StageAttr.ValueSet(state))
}

func (r *release) setSite(ctx workflow.Context, i int, state, reason string) {
	r.status.Sites[i] = SiteStatus{Site: r.status.Sites[i].Site, State: state, Reason: reason, UpdatedAt: stamp(ctx)}
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
