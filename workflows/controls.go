package workflows

import (
	"github.com/modelfleet/modelfleet"
	"go.temporal.io/sdk/workflow"
)

// controls is the release's view of the signals received so far. A
// coroutine drains the channels; the main flow waits on these fields with
// workflow.Await, so a control takes effect at the next safe point.
type controls struct {
	approved, rejected, paused, aborted, rollback, skipBake bool
	log                                                     []modelfleet.ControlRecord
}

func (r *release) listen(ctx workflow.Context) {
	sel := workflow.NewSelector(ctx)
	for _, name := range modelfleet.Signals {
		ch := workflow.GetSignalChannel(ctx, name)
		sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
			var ctl modelfleet.Control
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

func (r *release) apply(ctx workflow.Context, action string, ctl modelfleet.Control) {
	if ctl.By == "" {
		ctl.By = "unknown"
	}
	c := &r.ctl
	switch action {
	case modelfleet.SignalApprove:
		c.approved = true
	case modelfleet.SignalReject:
		c.rejected = true
	case modelfleet.SignalPause:
		c.paused = true
	case modelfleet.SignalResume:
		c.paused = false
	case modelfleet.SignalAbort:
		c.aborted = true
	case modelfleet.SignalRollback:
		c.rollback = true
	case modelfleet.SignalSkipBake:
		c.skipBake = true
	}
	rec := modelfleet.ControlRecord{Action: action, By: ctl.By, Reason: ctl.Reason, At: stamp(ctx), Wave: r.currentWave()}
	c.log = append(c.log, rec)
	r.status.Controls = c.log
	r.status.Paused = c.paused
	workflow.GetLogger(ctx).Info("release control", "action", action, "by", ctl.By, "reason", ctl.Reason)
}

// stopping reports whether an operator asked the release to stop.
func (c *controls) stopping() bool { return c.aborted || c.rollback || c.rejected }
