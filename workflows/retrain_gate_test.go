package workflows

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
)

// gateResult is what gateWorkflow returns: the release's status and the
// gate's record (ReleaseStatus gets a Champion field when the lead wires
// the gate into Release).
type gateResult struct {
	Status modelfleet.ReleaseStatus  `json:"status"`
	Check  *modelfleet.ChampionCheck `json:"check"`
	Passed bool                      `json:"passed"`
}

// gateWorkflow is the part of Release the gate sits in: controls listening,
// the gate, and r.end for whatever it returns.
func gateWorkflow(ctx workflow.Context, in modelfleet.ReleaseInput) (gateResult, error) {
	r := newRelease(ctx, in, modelfleet.ReleaseWorkflowID(in.Model), nil)
	r.status.State = modelfleet.StateValidating
	var check *modelfleet.ChampionCheck
	if err := workflow.SetQueryHandler(ctx, modelfleet.StatusQuery, func() (gateResult, error) {
		return gateResult{Status: r.status, Check: check}, nil
	}); err != nil {
		return gateResult{}, err
	}
	r.listen(ctx)
	if err := r.championGate(ctx, &check); err != nil {
		st, err := r.end(ctx, err)
		return gateResult{Status: st, Check: check}, err
	}
	return gateResult{Status: r.status, Check: check, Passed: true}, nil
}

// newGateEnv mocks CheckChampion: it takes a minute and answers cmp.
func newGateEnv(t *testing.T, cmp modelfleet.Comparison) (*testsuite.TestWorkflowEnvironment, *[]activities.GateRequest) {
	t.Helper()
	env := newRetrainEnv(t)
	env.RegisterWorkflowWithOptions(gateWorkflow, workflow.RegisterOptions{Name: "gate"})
	var reqs []activities.GateRequest
	env.OnActivity("CheckChampion", mock.Anything, mock.Anything).After(time.Minute).Return(func(_ context.Context, req activities.GateRequest) (modelfleet.Comparison, error) {
		reqs = append(reqs, req)
		return cmp, nil
	})
	return env, &reqs
}

var v5 = modelfleet.ReleaseInput{Model: modelfleet.ModelRef{Name: model, Version: "5"}}

func gateRun(t *testing.T, env *testsuite.TestWorkflowEnvironment) (gateResult, error) {
	t.Helper()
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	var res gateResult
	err := env.GetWorkflowError()
	if err == nil {
		if gerr := env.GetWorkflowResult(&res); gerr != nil {
			t.Fatal(gerr)
		}
	}
	return res, err
}

func TestChampionGatePasses(t *testing.T) {
	env, reqs := newGateEnv(t, winner)
	in := v5
	in.Properties = map[string]string{modelfleet.PropGateMargin: "0.005"}
	env.ExecuteWorkflow("gate", in)
	res, err := gateRun(t, env)
	if err != nil || !res.Passed || res.Check == nil || res.Check.Outcome != modelfleet.GatePassed || res.Check.Reason != winner.Reason {
		t.Fatalf("gate = %+v, %v", res, err)
	}
	if len(*reqs) != 1 || (*reqs)[0].Margin != 0.005 || (*reqs)[0].Model != v5.Model {
		t.Errorf("requests = %+v", *reqs)
	}
}

// A version that lost waits at the gate (awaiting-approval, the reason
// shown); an approve sent while it waits overrides it, recorded; one sent
// before the gate opened does not.
func TestChampionGateOverride(t *testing.T) {
	env, reqs := newGateEnv(t, loser)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(modelfleet.SignalApprove, modelfleet.Control{By: "early", Reason: "meant for the canary gate"})
	}, time.Second) // while the comparison runs
	var waiting gateResult
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(modelfleet.StatusQuery)
		if err == nil {
			err = v.Get(&waiting)
		}
		if err != nil {
			t.Error(err)
		}
	}, time.Hour)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(modelfleet.SignalApprove, modelfleet.Control{By: "alice", Reason: "known regression on old data; the plant changed"})
	}, 2*time.Hour)
	env.ExecuteWorkflow("gate", v5)
	res, err := gateRun(t, env)
	if err != nil || !res.Passed {
		t.Fatalf("gate = %+v, %v", res, err)
	}
	if waiting.Status.State != modelfleet.StateAwaitingApproval || waiting.Status.Gate == nil || waiting.Status.Gate.After != modelfleet.ChampionGateName ||
		!strings.Contains(waiting.Status.Reason, loser.Reason) || waiting.Check.Outcome != modelfleet.GateWaiting {
		t.Errorf("while waiting: %+v gate %+v check %+v", waiting.Status, waiting.Status.Gate, waiting.Check)
	}
	c := res.Check
	if c.Outcome != modelfleet.GateOverridden || c.Override == nil || c.Override.By != "alice" || c.Passed {
		t.Errorf("check = %+v", c)
	}
	if res.Status.Gate != nil || !strings.Contains(res.Status.Reason, "overridden by alice") || len(res.Status.Controls) != 2 {
		t.Fatalf("status = %+v", res.Status)
	}
	if early := res.Status.Controls[0]; early.By != "early" || early.Refused != "no approval gate is open" {
		t.Errorf("early approve recorded as %+v, want refused: no gate was open", early)
	}
	if len(*reqs) != 1 || (*reqs)[0].Margin != 0 {
		t.Errorf("requests = %+v (default margin 0)", *reqs)
	}
}

// Nobody overrides: the release fails after the window, naming the metrics.
func TestChampionGateRejects(t *testing.T) {
	env, _ := newGateEnv(t, loser)
	env.ExecuteWorkflow("gate", v5)
	_, err := gateRun(t, env)
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != "ChampionGate" || !strings.Contains(err.Error(), loser.Reason) || !strings.Contains(err.Error(), "24h0m0s") {
		t.Fatalf("error = %v, want a ChampionGate failure", err)
	}
}

// An operator's reject at the gate ends the release as a reject does
// (nothing was touched: rolled back, trivially).
func TestChampionGateStoppedByAnOperator(t *testing.T) {
	env, _ := newGateEnv(t, loser)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(modelfleet.SignalReject, modelfleet.Control{By: "bob", Reason: "worse, as it says"})
	}, time.Hour)
	env.ExecuteWorkflow("gate", v5)
	res, err := gateRun(t, env)
	if err != nil || res.Passed || res.Status.State != modelfleet.StateRolledBack || res.Check.Outcome != modelfleet.GateStopped {
		t.Fatalf("gate = %+v / %+v, %v", res.Status, res.Check, err)
	}
}

func TestGateMargin(t *testing.T) {
	for v, want := range map[string]float64{"": 0, "0.01": 0.01, "x": 0, "-1": 0, "1": 0, "0": 0} {
		if got := gateMargin(map[string]string{modelfleet.PropGateMargin: v}); got != want {
			t.Errorf("gateMargin(%q) = %v, want %v", v, got, want)
		}
	}
}
