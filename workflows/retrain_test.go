package workflows

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/orchestrator"
)

const model = "bearing-failure"

func newRetrainEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := s.NewTestWorkflowEnvironment()
	requireHeartbeats(t, env)
	env.RegisterWorkflowWithOptions(Retrain, workflow.RegisterOptions{Name: modelfleet.RetrainWorkflowName})
	// No retraining policies: every cycle waits for a job submitted
	// elsewhere, as the workflow did before it could submit jobs.
	env.RegisterActivity(&activities.Retraining{})
	return env
}

func drift(id string) modelfleet.RetrainTrigger {
	return modelfleet.RetrainTrigger{Reason: modelfleet.ReasonDatasetDrift, EventID: id, Model: model, DriftCoefficient: 0.8, Monitor: model + "--drift"}
}

// at sends a signal d after the start.
func at(env *testsuite.TestWorkflowEnvironment, d time.Duration, name string, v any) {
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(name, v) }, d)
}

// query reads the status d after the start into *st.
func query(t *testing.T, env *testsuite.TestWorkflowEnvironment, d time.Duration, st *RetrainStatus) {
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(modelfleet.StatusQuery)
		if err != nil {
			t.Errorf("query at %s: %v", d, err)
			return
		}
		if err := v.Get(st); err != nil {
			t.Errorf("query at %s: %v", d, err)
		}
	}, d)
}

func result(t *testing.T, env *testsuite.TestWorkflowEnvironment) RetrainStatus {
	t.Helper()
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	var st RetrainStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestRetrainCoalescesTriggers(t *testing.T) {
	env := newRetrainEnv(t)
	at(env, time.Second, modelfleet.RetrainTriggerSignal, drift("e1"))
	at(env, 30*time.Second, modelfleet.RetrainTriggerSignal, drift("e2"))
	at(env, time.Minute, modelfleet.RetrainTriggerSignal, modelfleet.RetrainTrigger{Reason: modelfleet.ReasonMonitorThreshold, EventID: "e3", Model: model})
	// A trigger while the job runs joins the running retraining.
	at(env, 5*time.Minute, modelfleet.RetrainTriggerSignal, drift("e4"))
	var collecting, waiting RetrainStatus
	query(t, env, 90*time.Second, &collecting)
	query(t, env, 4*time.Minute, &waiting)
	at(env, 10*time.Minute, modelfleet.RunStatusSignal, modelfleet.RunStatus{Model: model, RunID: "run-1", Status: "Completed", EventID: "r1"})
	env.ExecuteWorkflow(modelfleet.RetrainWorkflowName, modelfleet.RetrainInput{Model: model})
	st := result(t, env)

	if got, want := collecting.Stage, modelfleet.RetrainCollecting; got != want {
		t.Errorf("stage at 90s = %q, want %q", got, want)
	}
	if collecting.Current == nil || collecting.Current.Triggers != 3 {
		t.Errorf("current cycle at 90s = %+v, want 3 triggers", collecting.Current)
	}
	if got, want := waiting.Stage, modelfleet.RetrainWaiting; got != want {
		t.Errorf("stage at 4m = %q, want %q", got, want)
	}
	if got, want := len(st.Cycles), 1; got != want {
		t.Fatalf("cycles = %d, want %d (%+v)", got, want, st.Cycles)
	}
	c := st.Cycles[0]
	if c.Triggers != 4 || c.Result != "completed" || c.RunID != "run-1" {
		t.Errorf("cycle = %+v, want 4 triggers, completed, run-1", c)
	}
	if got, want := c.Why, "3 trigger(s) (dataset-drift x2, monitor-threshold-breached x1) within the 2m0s debounce"; got != want {
		t.Errorf("why = %q, want %q", got, want)
	}
	if got, want := st.Stage, modelfleet.RetrainClosed; got != want {
		t.Errorf("final stage = %q, want %q", got, want)
	}
	if got, want := st.TriggersTotal, 4; got != want {
		t.Errorf("triggers total = %d, want %d", got, want)
	}
	if got, want := len(st.Triggers), 4; got != want {
		t.Fatalf("trigger records = %d, want %d", got, want)
	}
	if got, want := st.Triggers[3].Disposition, "coalesced into cycle 1 (waiting-for-job)"; got != want {
		t.Errorf("disposition of e4 = %q, want %q", got, want)
	}
}

func TestRetrainDedupesByEventID(t *testing.T) {
	env := newRetrainEnv(t)
	for i := range 3 {
		at(env, time.Duration(i+1)*time.Second, modelfleet.RetrainTriggerSignal, drift("same"))
	}
	// A redelivered run status is dropped too.
	done := modelfleet.RunStatus{Model: model, RunID: "run-1", Status: "Failed", EventID: "r1"}
	at(env, 10*time.Minute, modelfleet.RunStatusSignal, done)
	at(env, 11*time.Minute, modelfleet.RunStatusSignal, done)
	env.ExecuteWorkflow(modelfleet.RetrainWorkflowName, modelfleet.RetrainInput{Model: model})
	st := result(t, env)
	if st.TriggersTotal != 1 || st.Duplicates != 3 {
		t.Errorf("triggers total = %d, duplicates = %d, want 1 and 3", st.TriggersTotal, st.Duplicates)
	}
	if len(st.Cycles) != 1 || st.Cycles[0].Triggers != 1 || st.Cycles[0].Result != "failed" {
		t.Errorf("cycles = %+v, want one failed cycle of one trigger", st.Cycles)
	}
}

func TestRetrainCooldown(t *testing.T) {
	env := newRetrainEnv(t)
	at(env, time.Second, modelfleet.RetrainTriggerSignal, drift("e1"))
	at(env, 10*time.Minute, modelfleet.RunStatusSignal, modelfleet.RunStatus{Model: model, RunID: "run-1", Status: "Completed", EventID: "r1"})
	// Drift an hour after the retraining: deferred to the end of the cooldown.
	at(env, 70*time.Minute, modelfleet.RetrainTriggerSignal, drift("e2"))
	at(env, 80*time.Minute, modelfleet.RetrainTriggerSignal, drift("e3"))
	var cooling RetrainStatus
	query(t, env, 2*time.Hour, &cooling)
	env.ExecuteWorkflow(modelfleet.RetrainWorkflowName, modelfleet.RetrainInput{Model: model})
	st := result(t, env)

	if got, want := cooling.Stage, modelfleet.RetrainCooldown; got != want {
		t.Errorf("stage at 2h = %q, want %q", got, want)
	}
	if cooling.Current != nil {
		t.Errorf("a cycle is open during the cooldown: %+v", cooling.Current)
	}
	if got, want := len(st.Cycles), 2; got != want {
		t.Fatalf("cycles = %d, want %d (%+v)", got, want, st.Cycles)
	}
	first, second := st.Cycles[0], st.Cycles[1]
	finished := parse(t, first.FinishedAt)
	opened := parse(t, second.OpenedAt)
	if gap := opened.Sub(finished); gap < DefaultRetrainCooldown {
		t.Errorf("second cycle opened %s after the first finished, want at least the %s cooldown", gap, DefaultRetrainCooldown)
	}
	if second.Triggers != 2 {
		t.Errorf("second cycle has %d triggers, want the 2 deferred ones", second.Triggers)
	}
	// Nobody reported the second job: it times out.
	if got, want := second.Result, "timed-out"; got != want {
		t.Errorf("second result = %q, want %q", got, want)
	}
	if got, want := st.Triggers[1].Disposition[:len("deferred: cooldown until")], "deferred: cooldown until"; got != want {
		t.Errorf("disposition of e2 = %q", st.Triggers[1].Disposition)
	}
}

func TestRetrainRunStatus(t *testing.T) {
	env := newRetrainEnv(t)
	at(env, time.Second, modelfleet.RetrainTriggerSignal, drift("e1"))
	// Before the request: recorded, no effect.
	at(env, 30*time.Second, modelfleet.RunStatusSignal, modelfleet.RunStatus{Model: model, RunID: "old", Status: "Completed", EventID: "r0"})
	at(env, 5*time.Minute, modelfleet.RunStatusSignal, modelfleet.RunStatus{Model: model, RunID: "run-1", Status: "Running", EventID: "r1"})
	// Another job's final status does not end this one.
	at(env, 6*time.Minute, modelfleet.RunStatusSignal, modelfleet.RunStatus{Model: model, RunID: "other", Status: "Failed", EventID: "r2"})
	var running RetrainStatus
	query(t, env, 7*time.Minute, &running)
	at(env, 8*time.Minute, modelfleet.RunStatusSignal, modelfleet.RunStatus{Model: model, RunID: "run-1", Status: "completed", EventID: "r3"})
	env.ExecuteWorkflow(modelfleet.RetrainWorkflowName, modelfleet.RetrainInput{Model: model})
	st := result(t, env)

	if running.Stage != modelfleet.RetrainWaiting || running.Current == nil || running.Current.RunID != "run-1" || running.Current.RunStatus != "Running" {
		t.Errorf("status at 7m = %+v / %+v, want waiting on run-1 Running", running, running.Current)
	}
	if len(st.Cycles) != 1 || st.Cycles[0].Result != "completed" || st.Cycles[0].RunID != "run-1" {
		t.Fatalf("cycles = %+v, want run-1 completed", st.Cycles)
	}
	if got, want := parse(t, st.Cycles[0].FinishedAt).Sub(parse(t, st.StartedAt)), 8*time.Minute; got != want {
		t.Errorf("finished %s after start, want %s", got, want)
	}
}

func TestRetrainStatusQueryAndTimeouts(t *testing.T) {
	env := newRetrainEnv(t)
	var idle RetrainStatus
	query(t, env, time.Minute, &idle)
	at(env, 2*time.Minute, modelfleet.RetrainTriggerSignal, drift("e1"))
	var waiting RetrainStatus
	query(t, env, 10*time.Minute, &waiting)
	env.ExecuteWorkflow(modelfleet.RetrainWorkflowName, modelfleet.RetrainInput{Model: model, Debounce: 5 * time.Minute, JobTimeout: time.Hour, Cooldown: time.Hour, IdleTimeout: 2 * time.Hour})
	st := result(t, env)

	if idle.Stage != modelfleet.RetrainIdle || idle.Model != model || idle.Until == "" {
		t.Errorf("status before any trigger = %+v", idle)
	}
	if waiting.Stage != modelfleet.RetrainWaiting || waiting.Reason != "retraining requested: 1 trigger(s) (dataset-drift x1) within the 5m0s debounce" {
		t.Errorf("status at 10m = %q %q", waiting.Stage, waiting.Reason)
	}
	if len(st.Cycles) != 1 || st.Cycles[0].Result != "timed-out" {
		t.Fatalf("cycles = %+v, want one timed out", st.Cycles)
	}
	// Closed two hours after the last trigger, the cooldown over.
	if got, want := parse(t, st.UpdatedAt).Sub(parse(t, st.StartedAt)), 2*time.Hour+7*time.Minute; got != want {
		t.Errorf("closed %s after start, want %s", got, want)
	}
}

func TestRetrainContinuesAsNewWithItsState(t *testing.T) {
	env := newRetrainEnv(t)
	at(env, time.Second, modelfleet.RetrainTriggerSignal, drift("e1"))
	env.RegisterDelayedCallback(func() { env.SetContinueAsNewSuggested(true) }, time.Minute)
	// The suggestion is seen on the next wake-up: this signal.
	at(env, 90*time.Second, modelfleet.RetrainTriggerSignal, drift("e2"))
	env.ExecuteWorkflow(modelfleet.RetrainWorkflowName, modelfleet.RetrainInput{Model: model})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow error = %v, want continue-as-new", err)
	}
	var in modelfleet.RetrainInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
		t.Fatal(err)
	}
	if in.Model != model {
		t.Fatalf("carried input = %+v, want the model", in)
	}
	s := carriedState(t, in)
	if s.Status.Stage != modelfleet.RetrainCollecting || s.Status.Current == nil || s.Status.Current.Triggers != 2 {
		t.Errorf("carried stage %q, cycle %+v: want collecting with 2 triggers", s.Status.Stage, s.Status.Current)
	}
	if len(s.Seen) != 2 || s.Deadline.IsZero() {
		t.Errorf("carried seen = %v, deadline %v", s.Seen, s.Deadline)
	}

	// The next run resumes: e1 again is a duplicate, the debounce ends on
	// the carried deadline.
	env2 := newRetrainEnv(t)
	env2.SetStartTime(s.Deadline.Add(-30 * time.Second))
	at(env2, time.Second, modelfleet.RetrainTriggerSignal, drift("e1"))
	at(env2, 10*time.Minute, modelfleet.RunStatusSignal, modelfleet.RunStatus{Model: model, RunID: "run-1", Status: "Canceled", EventID: "r1"})
	env2.ExecuteWorkflow(modelfleet.RetrainWorkflowName, in)
	st := result(t, env2)
	if st.Duplicates != 1 || len(st.Cycles) != 1 || st.Cycles[0].Triggers != 2 || st.Cycles[0].Result != "canceled" {
		t.Errorf("after continue-as-new: duplicates %d, cycles %+v", st.Duplicates, st.Cycles)
	}
}

func TestRetrainRejectsAnInvalidModel(t *testing.T) {
	env := newRetrainEnv(t)
	env.ExecuteWorkflow(modelfleet.RetrainWorkflowName, modelfleet.RetrainInput{Model: "../x"})
	if err := env.GetWorkflowError(); err == nil {
		t.Fatal("workflow error = nil, want invalid model name")
	}
}

// carriedState is the RetrainState a continued run's input carries.
func carriedState(t *testing.T, in modelfleet.RetrainInput) *RetrainState {
	t.Helper()
	if len(in.State) == 0 {
		t.Fatalf("carried input = %+v, want the state", in)
	}
	var st RetrainState
	if err := json.Unmarshal(in.State, &st); err != nil {
		t.Fatalf("carried state: %v", err)
	}
	return &st
}

func parse(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return v
}

func TestRetrainIndexesItsStage(t *testing.T) {
	env := newRetrainEnv(t)
	var stages []string
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		if m, _ := sa.GetKeyword(orchestrator.ModelAttr); m != model {
			t.Errorf("model attribute = %q, want %q", m, model)
		}
		stage, _ := sa.GetKeyword(orchestrator.StageAttr)
		stages = append(stages, stage)
	}).Return(nil)
	at(env, time.Second, modelfleet.RetrainTriggerSignal, drift("e1"))
	at(env, 10*time.Minute, modelfleet.RunStatusSignal, modelfleet.RunStatus{Model: model, RunID: "run-1", Status: "Completed", EventID: "r1"})
	env.ExecuteWorkflow(modelfleet.RetrainWorkflowName, modelfleet.RetrainInput{Model: model})
	result(t, env)
	want := []string{modelfleet.RetrainIdle, modelfleet.RetrainCollecting, modelfleet.RetrainWaiting, modelfleet.RetrainCooldown, modelfleet.RetrainIdle, modelfleet.RetrainClosed}
	if !slices.Equal(stages, want) {
		t.Errorf("stages = %v, want %v", stages, want)
	}
}
