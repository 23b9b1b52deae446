package workflows

import (
	"fmt"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
)

// The champion/challenger gate of every release: before any site is
// touched, the registered version is scored against the version in
// production (the champion) on labelled data, and must be no worse (or
// better by the margin its registration asks for). Retrained challengers
// pass it because they already won the same comparison; a registration that
// loses waits at the gate, recorded, for an operator's override (the
// approve control), and fails if none comes.

// ChampionOverrideWindow is how long a release whose version lost to the
// champion waits for an override before it fails.
const ChampionOverrideWindow = 24 * time.Hour

// championGateChange versions the gate into Release (replay safety:
// histories recorded before it never ran it and replay without it).
const championGateChange = "release-champion-gate"

// championGate runs the gate, publishing its record through *out as it
// goes (the release passes &r.status.Champion, so the status query shows
// it). nil: roll out. An error ends the release (r.end): a loss nobody
// overrode is a non-retryable "ChampionGate" failure; an operator's reject,
// abort or rollback at the gate ends it as those controls do.
func (r *release) championGate(ctx workflow.Context, out **modelfleet.ChampionCheck) error {
	if workflow.GetVersion(ctx, championGateChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	// CheckChampion heartbeats while it runs: a worker killed mid-gate is
	// noticed within the heartbeat timeout, not the start-to-close (chaos
	// found a release in `validating` for minutes, waiting out 10).
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute, ScheduleToCloseTimeout: time.Hour,
		HeartbeatTimeout: 4 * activities.HeartbeatEvery,
		RetryPolicy:      &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
	var cmp modelfleet.Comparison
	req := activities.GateRequest{Model: r.in.Model, Margin: gateMargin(r.in.Properties)}
	if err := workflow.ExecuteActivity(actx, retraining.CheckChampion, req).Get(ctx, &cmp); err != nil {
		return fmt.Errorf("champion gate could not run: %w", err)
	}
	check := &modelfleet.ChampionCheck{Comparison: cmp, Outcome: modelfleet.GatePassed}
	*out = check
	if cmp.Passed {
		return nil
	}

	// Lost: wait for an approve sent from now on (one sent earlier was
	// meant for another gate; under the signed-controls rules it was
	// refused) or a stop. A refused approve overrides nothing.
	check.Outcome = modelfleet.GateWaiting
	from := len(r.ctl.log)
	override := func() *modelfleet.ControlRecord {
		for i := from; i < len(r.ctl.log); i++ {
			if r.ctl.log[i].Action == modelfleet.SignalApprove && r.ctl.log[i].Refused == "" {
				return &r.ctl.log[i]
			}
		}
		return nil
	}
	now := workflow.Now(ctx)
	r.status.Gate = &modelfleet.GateStatus{After: modelfleet.ChampionGateName, Since: now.UTC().Format(time.RFC3339),
		Deadline: now.Add(ChampionOverrideWindow).UTC().Format(time.RFC3339), OnTimeout: "fail"}
	r.setState(ctx, modelfleet.StateAwaitingApproval, "champion gate: "+cmp.Reason+"; approve to override")
	ok, err := workflow.AwaitWithTimeout(ctx, ChampionOverrideWindow, func() bool { return override() != nil || r.ctl.stopping() })
	r.closeGate()
	if err != nil {
		return err
	}
	switch rec := override(); {
	case ok && r.ctl.stopping():
		check.Outcome = modelfleet.GateStopped
		return r.checkpoint(ctx)
	case ok && rec != nil:
		r.ctl.approved = false // spent here: not a pass for a later gate
		o := *rec
		check.Outcome, check.Override = modelfleet.GateOverridden, &o
		r.setState(ctx, modelfleet.StateValidating, fmt.Sprintf("champion gate overridden by %s: %s", o.By, o.Reason))
		return nil
	}
	check.Outcome = modelfleet.GateRejected
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("champion gate: %s; not overridden within %s", cmp.Reason, ChampionOverrideWindow), "ChampionGate", nil)
}

// gateMargin reads modelfleet.PropGateMargin: a number from 0 to 1, else 0.
func gateMargin(props map[string]string) float64 {
	v, err := strconv.ParseFloat(props[modelfleet.PropGateMargin], 64)
	if err != nil || v < 0 || v >= 1 {
		return 0
	}
	return v
}
