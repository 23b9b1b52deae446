package workflows

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/orchestrator"
)

// calls records the retraining activities a test's workflow ran.
type calls struct {
	mu       sync.Mutex
	submits  []activities.SubmitRequest
	awaits   int
	evals    []activities.EvaluateRequest
	regs     []activities.RegisterRequest
	cancels  []activities.CancelRequest
	evalAt   []time.Time
	submitAt []time.Time
}

func (c *calls) count() (submits, awaits, evals, regs, cancels int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.submits), c.awaits, len(c.evals), len(c.regs), len(c.cancels)
}

var (
	winner = modelfleet.Comparison{Model: model, Champion: "3", Metric: "auc", ChallengerValue: 0.9312, ChampionValue: 0.9200, Margin: 0.005, Rows: 2000, Passed: true, Compared: true,
		Reason: "challenger auc 0.9312 beats champion 3's 0.9200 by 0.0112 (margin 0.005) on 2000 rows"}
	loser = modelfleet.Comparison{Model: model, Champion: "3", Metric: "auc", ChallengerValue: 0.9100, ChampionValue: 0.9200, Margin: 0.01, Rows: 2000, Compared: true,
		Reason: "challenger auc 0.9100 does not beat champion 3's 0.9200 by 0.01 (difference -0.0100, 2000 rows)"}
	running   = activities.JobStatus{Status: modelfleet.JobRunning}
	completed = activities.JobStatus{Status: modelfleet.JobCompleted, Terminal: true}
)

// computeEnv is a retraining environment whose model has a local policy:
// SubmitRetraining, EvaluateChallenger, RegisterChallenger and CancelRun
// are mocked and recorded; each test mocks AwaitRun.
func computeEnv(t *testing.T, cmp modelfleet.Comparison, submitDelay time.Duration) (*testsuite.TestWorkflowEnvironment, *calls) {
	t.Helper()
	env := newRetrainEnv(t)
	c := &calls{}
	env.OnActivity("SubmitRetraining", mock.Anything, mock.Anything).After(submitDelay).Return(func(_ context.Context, req activities.SubmitRequest) (activities.Submission, error) {
		c.mu.Lock()
		c.submits = append(c.submits, req)
		c.mu.Unlock()
		return activities.Submission{Compute: modelfleet.ComputeLocal, Ref: activities.RunRef{Kind: modelfleet.ComputeLocal, ID: req.JobID, Model: req.Model}}, nil
	})
	env.OnActivity("EvaluateChallenger", mock.Anything, mock.Anything).Return(func(ctx context.Context, req activities.EvaluateRequest) (modelfleet.Comparison, error) {
		c.mu.Lock()
		c.evals = append(c.evals, req)
		c.mu.Unlock()
		return cmp, nil
	})
	env.OnActivity("RegisterChallenger", mock.Anything, mock.Anything).Return(func(_ context.Context, req activities.RegisterRequest) (modelfleet.Model, error) {
		c.mu.Lock()
		c.regs = append(c.regs, req)
		c.mu.Unlock()
		return modelfleet.Model{ModelRef: modelfleet.ModelRef{Name: model, Version: "4"}}, nil
	})
	env.OnActivity("CancelRun", mock.Anything, mock.Anything).Return(func(_ context.Context, req activities.CancelRequest) error {
		c.mu.Lock()
		c.cancels = append(c.cancels, req)
		c.mu.Unlock()
		return nil
	})
	return env, c
}

// awaitReturns mocks AwaitRun: each call takes d of (virtual) time, then
// returns the next status of seq (the last one repeats).
func awaitReturns(env *testsuite.TestWorkflowEnvironment, c *calls, d time.Duration, seq ...activities.JobStatus) {
	env.OnActivity("AwaitRun", mock.Anything, mock.Anything).After(d).Return(func(_ context.Context, req activities.AwaitRunRequest) (activities.JobStatus, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := min(c.awaits, len(seq)-1)
		c.awaits++
		return seq[i], nil
	})
}

var jobIDRE = regexp.MustCompile(`^retrain-bearing-failure-[A-Za-z0-9]{1,12}-1$`)

// A completed job's challenger beats the champion: registered, and every
// step recorded in the status.
func TestRetrainRegistersAWinner(t *testing.T) {
	env, c := computeEnv(t, winner, 0)
	awaitReturns(env, c, 3*time.Minute, running, completed)
	var stages []string
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		stage, _ := args.Get(0).(temporal.SearchAttributes).GetKeyword(orchestrator.StageAttr)
		stages = append(stages, stage)
	}).Return(nil)
	at(env, time.Second, modelfleet.RetrainTriggerSignal, drift("e1"))
	at(env, 30*time.Second, modelfleet.RetrainTriggerSignal, drift("e2"))
	var waiting RetrainStatus
	query(t, env, 6*time.Minute, &waiting) // the first AwaitRun returned Running at 5m1s
	env.ExecuteWorkflow(modelfleet.RetrainWorkflowName, modelfleet.RetrainInput{Model: model})
	st := result(t, env)

	if len(st.Cycles) != 1 {
		t.Fatalf("cycles = %+v", st.Cycles)
	}
	cy := st.Cycles[0]
	if cy.Result != ResultRegistered || cy.Registered == nil || cy.Registered.Version != "4" || cy.Compute != modelfleet.ComputeLocal ||
		cy.Run == nil || cy.RunID != cy.JobID || cy.StatusFrom != "poll" || cy.Evaluation == nil || !cy.Evaluation.Passed {
		t.Errorf("cycle = %+v", cy)
	}
	if !jobIDRE.MatchString(cy.JobID) {
		t.Errorf("job id %q", cy.JobID)
	}
	if want := "registered bearing-failure:4 (its release starts now): " + winner.Reason; cy.Outcome != want {
		t.Errorf("outcome = %q, want %q", cy.Outcome, want)
	}
	if waiting.Stage != modelfleet.RetrainWaiting || waiting.Current == nil || waiting.Current.RunStatus != modelfleet.JobRunning ||
		!strings.Contains(waiting.Reason, "run "+cy.JobID+" on local") {
		t.Errorf("status while the job runs = %q %q %+v", waiting.Stage, waiting.Reason, waiting.Current)
	}
	s, a, e, r, x := c.count()
	if s != 1 || a != 2 || e != 1 || r != 1 || x != 0 {
		t.Errorf("submit %d, await %d, evaluate %d, register %d, cancel %d", s, a, e, r, x)
	}
	if c.submits[0].JobID != cy.JobID || c.submits[0].Why != cy.Why || c.evals[0].Margin != DefaultRetrainMargin || c.evals[0].Ref.ID != cy.JobID {
		t.Errorf("submit %+v, evaluate %+v", c.submits[0], c.evals[0])
	}
	if reg := c.regs[0]; reg.JobID != cy.JobID || reg.Comparison.Reason != winner.Reason || reg.Why != cy.Why || reg.Cycle != 1 {
		t.Errorf("register %+v", reg)
	}
	want := []string{modelfleet.RetrainIdle, modelfleet.RetrainCollecting, modelfleet.RetrainWaiting, modelfleet.RetrainEvaluating, modelfleet.RetrainRegistering, modelfleet.RetrainCooldown, modelfleet.RetrainIdle, modelfleet.RetrainClosed}
	if strings.Join(stages, ",") != strings.Join(want, ",") {
		t.Errorf("stages = %v, want %v", stages, want)
	}
}

// A challenger that does not beat the champion by the margin is recorded
// and nothing is registered.
func TestRetrainRejectsALoser(t *testing.T) {
	env, c := computeEnv(t, loser, 0)
	awaitReturns(env, c, time.Minute, completed)
	at(env, time.Second, modelfleet.RetrainTriggerSignal, drift("e1"))
	margin := 0.01
	env.ExecuteWorkflow(modelfleet.RetrainWorkflowName, modelfleet.RetrainInput{Model: model, Margin: &margin})
	st := result(t, env)
	cy := st.Cycles[0]
	if want := "rejected: challenger auc 0.9100 does not beat champion 3's 0.9200 by 0.01 (difference -0.0100, 2000 rows)"; cy.Result != ResultRejected || cy.Outcome != want {
		t.Errorf("cycle %q %q, want rejected %q", cy.Result, cy.Outcome, want)
	}
	if cy.Evaluation == nil || cy.Evaluation.Passed || cy.Registered != nil {
		t.Errorf("cycle = %+v", cy)
	}
	if _, _, e, r, _ := c.count(); e != 1 || r != 0 {
		t.Errorf("evaluated %d, registered %d; want 1 and 0", e, r)
	}
	if c.evals[0].Margin != 0.01 {
		t.Errorf("margin %v, want 0.01", c.evals[0].Margin)
	}
}

// A failed job ends the cycle with the runner's message; nothing is
// evaluated.
func TestRetrainRunFailed(t *testing.T) {
	env, c := computeEnv(t, winner, 0)
	awaitReturns(env, c, time.Minute, activities.JobStatus{Status: modelfleet.JobFailed, Terminal: true, Message: "exit code 3: no label column"})
	at(env, time.Second, modelfleet.RetrainTriggerSignal, drift("e1"))
	env.ExecuteWorkflow(modelfleet.RetrainWorkflowName, modelfleet.RetrainInput{Model: model})
	st := result(t, env)
	cy := st.Cycles[0]
	if cy.Result != ResultFailed || cy.Outcome != "run "+cy.JobID+" failed: exit code 3: no label column" || cy.Evaluation != nil {
		t.Errorf("cycle = %+v", cy)
	}
	if _, _, e, r, _ := c.count(); e != 0 || r != 0 {
		t.Errorf("evaluated %d, registered %d", e, r)
	}
}

// A submission that fails for good ends the cycle; the next trigger after
// the cooldown starts a new one.
func TestRetrainSubmissionFails(t *testing.T) {
	env := newRetrainEnv(t)
	env.OnActivity("SubmitRetraining", mock.Anything, mock.Anything).Return(activities.Submission{},
		temporal.NewNonRetryableApplicationError("no training data for bearing-failure: put labelled CSV files in /data/bearing-failure/train", "InvalidInput", nil))
	at(env, time.Second, modelfleet.RetrainTriggerSignal, drift("e1"))
	env.ExecuteWorkflow(modelfleet.RetrainWorkflowName, modelfleet.RetrainInput{Model: model})
	st := result(t, env)
	if cy := st.Cycles[0]; cy.Result != ResultFailed || !strings.Contains(cy.Outcome, "submitting the job failed: no training data") {
		t.Errorf("cycle = %+v", cy)
	}
}

// No terminal status within JobTimeout: the poll is stopped and the job
// cancelled.
func TestRetrainTimeoutCancelsTheRun(t *testing.T) {
	env, c := computeEnv(t, winner, 0)
	awaitReturns(env, c, 10*time.Minute, running)
	at(env, time.Second, modelfleet.RetrainTriggerSignal, drift("e1"))
	env.ExecuteWorkflow(modelfleet.RetrainWorkflowName, modelfleet.RetrainInput{Model: model, JobTimeout: time.Hour})
	st := result(t, env)
	cy := st.Cycles[0]
	if cy.Result != ResultTimedOut || cy.Outcome != "no terminal status within 1h0m0s: cancelling run "+cy.JobID+"; run "+cy.JobID+" cancelled" {
		t.Errorf("cycle %q %q", cy.Result, cy.Outcome)
	}
	if got := parse(t, cy.FinishedAt).Sub(parse(t, cy.RequestedAt)); got != time.Hour {
		t.Errorf("timed out after %s, want 1h", got)
	}
	_, a, e, _, x := c.count()
	if x != 1 || c.cancels[0].Ref.ID != cy.JobID || c.cancels[0].Ref.Kind != modelfleet.ComputeLocal || e != 0 {
		t.Errorf("cancels %+v, evaluations %d", c.cancels, e)
	}
	if a < 5 || a > 7 {
		t.Errorf("AwaitRun ran %d times in an hour of 10-minute windows", a)
	}
	if len(st.Triggers) != 1 {
		t.Errorf("triggers %+v", st.Triggers)
	}
}

// The signal and the poll race: whichever reports the terminal status first
// moves the cycle on, the other is dropped; the challenger is evaluated and
// registered once.
func TestRetrainSignalAndPollRace(t *testing.T) {
	for _, tc := range []struct {
		name        string
		submitDelay time.Duration
		signalAt    time.Duration // after the start; the submission starts at 2m1s
		pollAfter   time.Duration // AwaitRun's duration
		from        string
	}{
		{"signal first", 0, 4 * time.Minute, 10 * time.Minute, "signal"},
		{"poll first", 0, 9 * time.Minute, 3 * time.Minute, "poll"},
		{"same instant", 0, 2*time.Minute + time.Second + 5*time.Minute, 5 * time.Minute, ""},
		{"signal before the submission returned", 3 * time.Minute, 3 * time.Minute, 10 * time.Minute, "signal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, c := computeEnv(t, winner, tc.submitDelay)
			awaitReturns(env, c, tc.pollAfter, completed)
			at(env, time.Second, modelfleet.RetrainTriggerSignal, drift("e1"))
			env.RegisterDelayedCallback(func() {
				v, err := env.QueryWorkflow(modelfleet.StatusQuery)
				if err != nil {
					t.Error(err)
					return
				}
				var st RetrainStatus
				_ = v.Get(&st)
				id := jobIDOf(t, st)
				env.SignalWorkflow(modelfleet.RunStatusSignal, modelfleet.RunStatus{Model: model, RunID: id, Status: "Completed", EventID: "r1"})
			}, tc.signalAt)
			env.ExecuteWorkflow(modelfleet.RetrainWorkflowName, modelfleet.RetrainInput{Model: model})
			st := result(t, env)
			cy := st.Cycles[0]
			if cy.Result != ResultRegistered || (tc.from != "" && cy.StatusFrom != tc.from) || cy.StatusFrom == "" {
				t.Errorf("cycle %s from %q (want %q): %s", cy.Result, cy.StatusFrom, tc.from, cy.Outcome)
			}
			if s, _, e, r, _ := c.count(); s != 1 || e != 1 || r != 1 {
				t.Errorf("submitted %d, evaluated %d, registered %d; want once each", s, e, r)
			}
		})
	}
}

// jobIDOf reads the job ID of the current cycle, as the gateway would know
// it from the job's tags.
func jobIDOf(t *testing.T, st RetrainStatus) string {
	t.Helper()
	switch {
	case st.Current != nil && st.Current.JobID != "":
		return st.Current.JobID
	case len(st.Cycles) > 0:
		return st.Cycles[len(st.Cycles)-1].JobID
	}
	t.Fatalf("no job id in %+v", st)
	return ""
}

// A job tagged for this model but not submitted by this cycle, ending while
// the cycle's own submission is in flight, is taken as the cycle's (as
// before the workflow submitted jobs); the cycle's own job is cancelled.
func TestRetrainAdoptsAForeignJobWhileSubmitting(t *testing.T) {
	env, c := computeEnv(t, winner, 30*time.Minute)
	awaitReturns(env, c, time.Minute, completed)
	at(env, time.Second, modelfleet.RetrainTriggerSignal, drift("e1"))
	at(env, 5*time.Minute, modelfleet.RunStatusSignal, modelfleet.RunStatus{Model: model, RunID: "job-1", Status: "Running", EventID: "r0"})
	at(env, 6*time.Minute, modelfleet.RunStatusSignal, modelfleet.RunStatus{Model: model, RunID: "job-1", Status: "Completed", EventID: "r1"})
	env.ExecuteWorkflow(modelfleet.RetrainWorkflowName, modelfleet.RetrainInput{Model: model})
	st := result(t, env)
	cy := st.Cycles[0]
	if cy.Result != ResultCompleted || cy.RunID != "job-1" || !strings.Contains(cy.Outcome, "submitted elsewhere") || !strings.Contains(cy.Outcome, "run "+cy.JobID+" cancelled") {
		t.Errorf("cycle = %s %s: %s", cy.Result, cy.RunID, cy.Outcome)
	}
	if _, _, e, _, x := c.count(); e != 0 || x != 1 || c.cancels[0].Ref.ID != cy.JobID || c.cancels[0].Ref.Kind != "" {
		t.Errorf("evaluations %d, cancels %+v", e, c.cancels)
	}
}

// Cancelling the workflow while its job runs cancels the job.
func TestRetrainWorkflowCancelCancelsTheRun(t *testing.T) {
	env, c := computeEnv(t, winner, 0)
	awaitReturns(env, c, 10*time.Minute, running)
	at(env, time.Second, modelfleet.RetrainTriggerSignal, drift("e1"))
	env.RegisterDelayedCallback(env.CancelWorkflow, 20*time.Minute)
	env.ExecuteWorkflow(modelfleet.RetrainWorkflowName, modelfleet.RetrainInput{Model: model})
	if err := env.GetWorkflowError(); !temporal.IsCanceledError(err) {
		t.Fatalf("workflow error = %v, want canceled", err)
	}
	if _, _, _, _, x := c.count(); x != 1 || !strings.HasPrefix(c.cancels[0].Ref.ID, "retrain-bearing-failure-") {
		t.Errorf("cancels = %+v", c.cancels)
	}
}

// Continue-as-new waits for the activity in flight, carries the run, and
// the next run follows the same job instead of submitting another.
func TestRetrainContinuesAsNewWithItsRun(t *testing.T) {
	env, c := computeEnv(t, winner, 0)
	awaitReturns(env, c, 10*time.Minute, running)
	at(env, time.Second, modelfleet.RetrainTriggerSignal, drift("e1"))
	env.RegisterDelayedCallback(func() { env.SetContinueAsNewSuggested(true) }, 5*time.Minute)
	at(env, 6*time.Minute, modelfleet.RetrainTriggerSignal, drift("e2")) // wakes the loop: AwaitRun is in flight
	env.ExecuteWorkflow(modelfleet.RetrainWorkflowName, modelfleet.RetrainInput{Model: model})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow error = %v, want continue-as-new", err)
	}
	var in modelfleet.RetrainInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
		t.Fatal(err)
	}
	carried := carriedState(t, in)
	cur := carried.Status.Current
	if cur == nil || cur.Run == nil || cur.Compute != modelfleet.ComputeLocal || carried.Status.Stage != modelfleet.RetrainWaiting || cur.Triggers != 2 {
		t.Fatalf("carried %q %+v", carried.Status.Stage, cur)
	}
	if _, a, _, _, _ := c.count(); a != 1 {
		t.Errorf("AwaitRun ran %d times before continuing as new, want 1 (it was let finish)", a)
	}

	env2, c2 := computeEnv(t, winner, 0)
	awaitReturns(env2, c2, time.Minute, completed)
	env2.SetStartTime(parse(t, carried.Status.UpdatedAt)) // where the first run stopped
	env2.ExecuteWorkflow(modelfleet.RetrainWorkflowName, in)
	st := result(t, env2)
	if s, _, e, r, _ := c2.count(); s != 0 || e != 1 || r != 1 {
		t.Errorf("after continue-as-new: submitted %d, evaluated %d, registered %d; want 0, 1, 1", s, e, r)
	}
	if cy := st.Cycles[0]; cy.Result != ResultRegistered || cy.JobID != cur.JobID {
		t.Errorf("cycle = %+v", cy)
	}
}
