package workflows

import (
	"encoding/json"
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
)

// historyLimit is the history length past which a release continues as new
// between batches. Temporal warns at 10,240 events and suggests continuing
// as new well before its hard limit; a batch adds about 20 events per step,
// so this keeps every run's history under 10,000.
const historyLimit = 8000

// Checkpoint is what a release carries into its next run when it continues
// as new: everything the rest of the rollout needs, nothing it can re-read.
type Checkpoint struct {
	Status     modelfleet.ReleaseStatus  `json:"status"`
	Plan       activities.RolloutPlan    `json:"plan"`
	NewVersion modelfleet.DesiredVersion `json:"newVersion"`
	Wave       int                       `json:"wave"`
	Remaining  []activities.PlannedSite  `json:"remaining"`
	Touched    [][]string                `json:"touched"`
	Controls   ControlState              `json:"controls"`
}

// decodeCheckpoint reads ReleaseInput.Resume: nil on a fresh start. The
// input carries it as raw JSON (see modelfleet.ReleaseInput); the JSON is the
// same as when the field was a *Checkpoint, so recorded histories replay.
func decodeCheckpoint(resume []byte) (*Checkpoint, error) {
	if len(resume) == 0 {
		return nil, nil
	}
	c := new(Checkpoint)
	if err := json.Unmarshal(resume, c); err != nil {
		return nil, fmt.Errorf("release: decode checkpoint (input field %q): %w", "resume", err)
	}
	return c, nil
}

// ControlState is the controls' effect so far, carried across runs.
type ControlState struct {
	Paused, Aborted, Rollback, Rejected bool
	// Nonces of the verified statements not yet expired: a statement
	// used in one run is not good in the next.
	Nonces []SeenNonce `json:"nonces,omitempty"`
}

// eventsPerStep is a generous estimate of the history events one batch step
// adds (two activities, a timer, the workflow tasks around them). Counting
// it ourselves keeps the decision deterministic and testable; the server's
// own figures are checked too.
const eventsPerStep = 24

func (r *release) historyFull(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return r.events > historyLimit || info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > historyLimit
}

// continueAsNew ends this run and starts the next one with a checkpoint.
// Signals already delivered but not yet handled are applied first, so no
// operator control is lost across the boundary.
func (r *release) continueAsNew(ctx workflow.Context, wave int, remaining []activities.PlannedSite) error {
	r.drainSignals(ctx)
	c := &Checkpoint{
		Status: r.status, Plan: r.planned, NewVersion: r.nv, Wave: wave, Remaining: remaining, Touched: r.touched,
		Controls: ControlState{Paused: r.ctl.paused, Aborted: r.ctl.aborted, Rollback: r.ctl.rollback, Rejected: r.ctl.rejected, Nonces: r.ctl.nonces},
	}
	resume, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("release: encode checkpoint: %w", err)
	}
	workflow.GetLogger(ctx).Info("release continues as new", "wave", r.status.Waves[wave].Name, "remaining", len(remaining))
	if r.workload != nil {
		in := *r.workload
		in.Resume = resume
		return workflow.NewContinueAsNewError(ctx, modelfleet.WorkloadReleaseWorkflowName, in)
	}
	in := r.in
	in.Resume = resume
	return workflow.NewContinueAsNewError(ctx, modelfleet.ReleaseWorkflowName, in)
}

func (r *release) restore(c *Checkpoint) {
	r.status, r.planned, r.nv, r.touched, r.wave = c.Status, c.Plan, c.NewVersion, c.Touched, c.Wave
	r.ctl.paused, r.ctl.aborted, r.ctl.rollback, r.ctl.rejected = c.Controls.Paused, c.Controls.Aborted, c.Controls.Rollback, c.Controls.Rejected
	r.ctl.log, r.ctl.nonces = c.Status.Controls, c.Controls.Nonces
	for i, s := range r.status.Sites {
		r.index[s.Site] = i
	}
}

func (r *release) drainSignals(ctx workflow.Context) {
	for _, name := range modelfleet.Signals {
		ch := workflow.GetSignalChannel(ctx, name)
		for {
			var ctl modelfleet.Control
			if !ch.ReceiveAsync(&ctl) {
				break
			}
			r.apply(ctx, name, ctl)
		}
	}
}
