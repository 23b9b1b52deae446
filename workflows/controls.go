package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet/workflows/wfapi"
)

// Control signals on a release and their payload (see wfapi).
const (
	SignalApprove  = wfapi.SignalApprove
	SignalReject   = wfapi.SignalReject
	SignalPause    = wfapi.SignalPause
	SignalResume   = wfapi.SignalResume
	SignalAbort    = wfapi.SignalAbort
	SignalRollback = wfapi.SignalRollback
	SignalSkipBake = wfapi.SignalSkipBake
)

// Signals lists every control signal, in the order the CLI shows them.
var Signals = wfapi.Signals

// Control is the payload of every control signal.
type Control = wfapi.Control

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
