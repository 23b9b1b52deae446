package workflows

import (
	"fmt"
	"slices"

	"github.com/modelfleet/modelfleet"
	"go.temporal.io/sdk/workflow"
)

// MaxMonitorVerdicts bounds the verdicts a release keeps in its status.
const MaxMonitorVerdicts = 20

// listenMonitor receives the drift monitor's verdicts on the new version.
// Each is recorded in the status; one that says the new version itself
// misbehaves — its predictions drifted — at a site of the batch being
// baked ends the bake with a breach, so the release rolls back. Data drift
// and data-quality breaches are recorded only: they are about the inputs,
// which no rollback cures (retraining, and the plant, are for those).
func (r *release) listenMonitor(ctx workflow.Context) {
	ch := workflow.GetSignalChannel(ctx, modelfleet.SignalMonitorVerdict)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var v modelfleet.MonitorVerdict
			ch.Receive(ctx, &v)
			r.onVerdict(ctx, v)
		}
	})
}

func (r *release) onVerdict(ctx workflow.Context, v modelfleet.MonitorVerdict) {
	// A model release judges its new version; a workload release changes
	// the inputs of every version the site serves.
	if r.workload == nil && v.Version != r.in.Model.Version {
		return
	}
	r.status.Monitor = append(r.status.Monitor, v)
	if n := len(r.status.Monitor); n > MaxMonitorVerdicts {
		r.status.Monitor = slices.Clone(r.status.Monitor[n-MaxMonitorVerdicts:])
	}
	workflow.GetLogger(ctx).Info("monitor verdict", "site", v.Site, "reason", v.Reason)
	if v.PredictionDrift && r.monitorBreach == "" && slices.Contains(r.baking, v.Site) {
		r.monitorBreach = fmt.Sprintf("drift monitor at site %s: %s", v.Site, v.Reason)
	}
}
