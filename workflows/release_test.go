package workflows

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/edge"
)

var ref = modelfleet.ModelRef{Name: "bearing-failure", Version: "1"}

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Release, workflow.RegisterOptions{Name: ReleaseWorkflowName})
	env.RegisterActivity(&activities.Cloud{})
	env.RegisterActivity(&activities.Site{})
	return env
}

func passed() activities.ValidationReport {
	return activities.ValidationReport{
		Model:  modelfleet.Model{ModelRef: ref, Format: "lightgbm", Digest: "sha256:ab", ArtifactURL: "http://registry/blob"},
		Result: activities.ValidationResult{Metric: "auc", Value: 0.95, Threshold: 0.85, Rows: 100, Passed: true},
	}
}

func sites(ids ...string) []modelfleet.Site {
	out := make([]modelfleet.Site, len(ids))
	for i, id := range ids {
		out[i] = modelfleet.Site{ID: id, TaskQueue: modelfleet.SiteTaskQueue(id)}
	}
	return out
}

func TestReleaseDeploysToEverySite(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(cloud.ValidateModel, mock.Anything, ref).Return(passed(), nil)
	env.OnActivity(cloud.ListSites, mock.Anything).Return(sites("site-1", "site-2", "site-3"), nil)
	deployed := map[string]bool{}
	env.OnActivity(site.DeployModel, mock.Anything, mock.Anything).Return(
		func(_ context.Context, req edge.DeployRequest) (edge.DeployResult, error) {
			if got, want := req.Digest, "sha256:ab"; got != want {
				t.Errorf("deploy digest = %q, want %q", got, want)
			}
			return edge.DeployResult{Model: req.Model, Digest: req.Digest, Changed: true}, nil
		})
	queues := map[string]bool{}
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == "DeployModel" {
			queues[info.TaskQueue] = true
		}
	})
	env.ExecuteWorkflow(ReleaseWorkflowName, ReleaseInput{Model: ref})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	var st ReleaseStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if got, want := st.State, StateSucceeded; got != want {
		t.Errorf("state = %q, want %q", got, want)
	}
	if got, want := len(st.Sites), 3; got != want {
		t.Fatalf("sites = %d, want %d", got, want)
	}
	for _, s := range st.Sites {
		if s.State != SiteHealthy {
			t.Errorf("site %s state = %q, want %q", s.Site, s.State, SiteHealthy)
		}
		deployed[s.Site] = true
	}
	if len(deployed) != 3 {
		t.Errorf("deployed to %v, want 3 distinct sites", deployed)
	}
	for _, id := range []string{"site-1", "site-2", "site-3"} {
		if !queues[modelfleet.SiteTaskQueue(id)] {
			t.Errorf("no DeployModel on %s's task queue (saw %v)", id, queues)
		}
	}
}

func TestReleaseStopsWhenValidationFails(t *testing.T) {
	env := newEnv(t)
	rep := passed()
	rep.Result.Passed, rep.Result.Value = false, 0.61
	env.OnActivity(cloud.ValidateModel, mock.Anything, ref).Return(rep, nil)
	env.ExecuteWorkflow(ReleaseWorkflowName, ReleaseInput{Model: ref})
	err := env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != "ValidationFailed" {
		t.Fatalf("workflow error = %v, want a ValidationFailed application error", err)
	}
	env.AssertNotCalled(t, "ListSites", mock.Anything)
	env.AssertNotCalled(t, "DeployModel", mock.Anything, mock.Anything)
	st := queryStatus(t, env)
	if got, want := st.State, StateFailed; got != want {
		t.Errorf("state = %q, want %q", got, want)
	}
	if !strings.Contains(st.Reason, "0.6100 is below the threshold 0.8500") {
		t.Errorf("reason = %q, want it to name the metric and threshold", st.Reason)
	}
}

func TestReleaseReportsTheFailingSite(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(cloud.ValidateModel, mock.Anything, ref).Return(passed(), nil)
	env.OnActivity(cloud.ListSites, mock.Anything).Return(sites("site-1", "site-2"), nil)
	env.OnActivity(site.DeployModel, mock.Anything, mock.Anything).Return(edge.DeployResult{}, nil).Once()
	env.OnActivity(site.DeployModel, mock.Anything, mock.Anything).Return(edge.DeployResult{},
		temporal.NewNonRetryableApplicationError("digest mismatch", "DigestMismatch", nil))
	env.ExecuteWorkflow(ReleaseWorkflowName, ReleaseInput{Model: ref})
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "deploy failed at 1 of 2 sites") {
		t.Fatalf("workflow error = %v, want deploy failed at 1 of 2 sites", err)
	}
	st := queryStatus(t, env)
	states := map[string]int{}
	for _, s := range st.Sites {
		states[s.State]++
		if s.State == SiteFailed && !strings.Contains(s.Reason, "digest mismatch") {
			t.Errorf("failed site reason = %q, want the activity's error", s.Reason)
		}
	}
	if states[SiteHealthy] != 1 || states[SiteFailed] != 1 {
		t.Errorf("site states = %v, want one healthy and one failed", states)
	}
}

func TestReleaseWithNoSitesFails(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(cloud.ValidateModel, mock.Anything, ref).Return(passed(), nil)
	env.OnActivity(cloud.ListSites, mock.Anything).Return([]modelfleet.Site{}, nil)
	env.ExecuteWorkflow(ReleaseWorkflowName, ReleaseInput{Model: ref})
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "no sites registered") {
		t.Fatalf("workflow error = %v, want no sites registered", err)
	}
}

func TestReleaseRejectsAnInvalidModelRef(t *testing.T) {
	env := newEnv(t)
	env.ExecuteWorkflow(ReleaseWorkflowName, ReleaseInput{Model: modelfleet.ModelRef{Name: "../etc", Version: "1"}})
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "model name") {
		t.Fatalf("workflow error = %v, want an invalid model name error", err)
	}
	env.AssertNotCalled(t, "ValidateModel", mock.Anything, mock.Anything)
}

func TestStatusQueryWhileDeploying(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(cloud.ValidateModel, mock.Anything, ref).Return(passed(), nil)
	env.OnActivity(cloud.ListSites, mock.Anything).Return(sites("site-1"), nil)
	env.OnActivity(site.DeployModel, mock.Anything, mock.Anything).After(time.Minute).Return(edge.DeployResult{}, nil)
	var mid ReleaseStatus
	env.RegisterDelayedCallback(func() { mid = queryStatus(t, env) }, 30*time.Second)
	env.ExecuteWorkflow(ReleaseWorkflowName, ReleaseInput{Model: ref})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if got, want := mid.State, StateDeploying; got != want {
		t.Errorf("state mid-deploy = %q, want %q", got, want)
	}
	if len(mid.Sites) != 1 || mid.Sites[0].State != SiteDeploying {
		t.Errorf("sites mid-deploy = %+v, want site-1 deploying", mid.Sites)
	}
	if mid.Validation == nil || !mid.Validation.Passed {
		t.Errorf("validation mid-deploy = %+v, want the passed result", mid.Validation)
	}
}

func queryStatus(t *testing.T, env *testsuite.TestWorkflowEnvironment) ReleaseStatus {
	t.Helper()
	v, err := env.QueryWorkflow(StatusQuery)
	if err != nil {
		t.Fatalf("status query: %v", err)
	}
	var st ReleaseStatus
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st
}
