package workflows

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
)

// A plan that a site's driver refuses (here: Azure ML's endpoints-per-cluster
// quota, as PlanRollout reports it) fails the release before any site's
// desired state changes, with the limit in the status, and is not retried.
func TestReleaseStopsWhenDriversRefuseThePlan(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Release, workflow.RegisterOptions{Name: modelfleet.ReleaseWorkflowName})
	env.RegisterActivity(&activities.Cloud{})
	env.RegisterActivity(&activities.Retraining{})
	report := passed()
	env.OnActivity(cloud.ValidateModel, mock.Anything, ref).Return(report, nil)

	const refusal = `plan bearing-failure: release plan exceeds the Azure ML limit "endpoints per cluster" (60): cluster "line-1" would need 61`
	var calls int
	var got *modelfleet.DesiredVersion
	env.OnActivity(cloud.PlanRollout, mock.Anything, ref.Name, mock.Anything).Return(
		func(_ context.Context, _ string, nv *modelfleet.DesiredVersion) (activities.RolloutPlan, error) {
			calls++
			got = nv
			return activities.RolloutPlan{}, temporal.NewNonRetryableApplicationError(refusal, "Invalid", nil)
		})
	var changed int
	env.OnActivity(cloud.ApplyStep, mock.Anything, mock.Anything).Return(func(_ context.Context, req modelfleet.StepRequest) (modelfleet.StepResult, error) {
		changed += len(req.Sites)
		return modelfleet.StepResult{Changed: len(req.Sites)}, nil
	})

	env.ExecuteWorkflow(modelfleet.ReleaseWorkflowName, modelfleet.ReleaseInput{Model: ref})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if env.GetWorkflowError() == nil {
		t.Fatal("release succeeded, want it failed by the plan")
	}
	v, err := env.QueryWorkflow(modelfleet.StatusQuery)
	if err != nil {
		t.Fatal(err)
	}
	var st modelfleet.ReleaseStatus
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	if got, want := st.State, modelfleet.StateFailed; got != want {
		t.Errorf("state = %q, want %q", got, want)
	}
	if !strings.Contains(st.Reason, `"endpoints per cluster" (60)`) {
		t.Errorf("reason %q does not name the limit", st.Reason)
	}
	if changed != 0 {
		t.Errorf("%d sites were stepped before the plan was accepted", changed)
	}
	if calls != 1 {
		t.Errorf("PlanRollout ran %d times, want once (the refusal is not retryable)", calls)
	}
	// The drivers need the version to count it and to name its deployment.
	if got == nil || got.Version != ref.Version || got.Digest != report.Model.Digest {
		t.Errorf("PlanRollout got version %+v, want %s with digest %s", got, ref.Version, report.Model.Digest)
	}
}
