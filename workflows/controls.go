package workflows

import (
	"go.temporal.io/sdk/workflow"
)

// Control signals on a release. Each carries a Control naming who and why,
// so the workflow history is the audit log. They work from the Temporal UI
// ("Send a signal", name and JSON input), `temporal workflow signal`, and
// `modelfleet release <action>`.
const (
	SignalApprove  = "approve"   // pass the current approval gate
	SignalReject   = "reject"    // refuse at the gate: every touched site rolls back
	SignalPause    = "pause"     // finish the current step, then hold
	SignalResume   = "resume"    // continue after a pause
	SignalAbort    = "abort"     // stop where it is; sites keep their current traffic
	SignalRollback = "rollback"  // restore every touched site to its previous versions and weights
	SignalSkipBake = "skip-bake" // end the current bake now (recorded)
)

// Signals lists every control signal, in the order the CLI shows them.
var Signals = []string{SignalApprove, SignalReject, SignalPause, SignalResume, SignalAbort, SignalRollback, SignalSkipBake}

// Control is the payload of every control signal.
type Control struct {
	By     string `json:"by"`
	Reason string `json:"reason"`
}

// ControlRecord is a control as the release recorded it.
type ControlRecord struct {
	Action string `json:"action"`
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
	At     string `json:"at"`
	Wave   string `json:"wave,omitempty"`
}

// controls is the release's view of the signals received so far. A
// coroutine drains the channels; the main flow waits on these fields with
// workflow.Await, so a control takes effect at the next safe point.
type controls struct {
	approved, rejected, paused, aborted, rollback, skipBake bool
	log                                                     []ControlRecord
}

func (r *release) listen(ctx workflow.Context) {
	sel := workflow.NewSelector(ctx)
	for _, name := range Signals {
		ch := workflow.GetSignalChannel(ctx, name)
		sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
			var ctl Control
			c.Receive(ctx, &ctl)
			r.apply(ctx, name, ctl)
		})
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel.Select(ctx)
		}
	})
}

func (r *release) apply(ctx workflow.Context, action string, ctl Control) {
	if ctl.By == "" {
		ctl.By = "unknown"
	}
	c := &r.ctl
	switch action {
	case SignalApprove:
		c.approved = true
	case SignalReject:
		c.rejected = true
	case SignalPause:
		c.paused = true
	case SignalResume:
		c.paused = false
	case SignalAbort:
		c.aborted = true
	case SignalRollback:
		c.rollback = true
	case SignalSkipBake:
		c.skipBake = true
	}
	rec := ControlRecord{Action: action, By: ctl.By, Reason: ctl.Reason, At: stamp(ctx), Wave: r.currentWave()}
	c.log = append(c.log, rec)
	r.status.Controls = c.log
	r.status.Paused = c.paused
	workflow.GetLogger(ctx).Info("release control", "action", action, "by", ctl.By, "reason", ctl.Reason)
}

// stopping reports whether an operator asked the release to stop.
func (c *controls) stopping() bool { return c.aborted || c.rollback || c.rejected }
