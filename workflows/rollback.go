package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
)

// rollbackAtOnce versions restoring every touched site in one step, all
// waves at once, then one wait for convergence (rollbackAll), instead of
// one restore and one wait per wave, last wave first (replay safety:
// recorded histories rolled back wave by wave).
const rollbackAtOnce = "release-rollback-at-once"

// rollbackAll restores every site the release touched in one directory
// step — one activity, whose request the fleet client splits if it is too
// large for one call — then waits once for all of them to converge. A
// rollback is the release's emergency exit: waiting for the last wave to
// converge before restoring the first would keep bad traffic on the
// earlier waves for nothing, since each site's restore is independent.
func (r *release) rollbackAll(ctx workflow.Context, reason string) error {
	var all []string
	for _, s := range r.touched {
		all = append(all, s...)
	}
	if len(all) > 0 {
		var res modelfleet.StepResult
		if err := workflow.ExecuteActivity(r.cloudCtx(ctx), cloud.RollbackSites, modelfleet.LeaseRequest{Release: r.id, Model: r.in.Model.Name, Sites: all}).Get(ctx, &res); err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
		p, err := r.await(ctx, all, ConvergeTimeout)
		if err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
		for _, s := range p.Converged {
			r.setSite(ctx, s, modelfleet.SiteRolledBack, "restored its previous versions")
		}
		for _, s := range p.Pending {
			r.setSite(ctx, s, modelfleet.SiteRolledBack, "restore pending: applies when the site reconnects")
		}
		for _, f := range p.Failed {
			r.setSite(ctx, f.Site, modelfleet.SiteFailed, "restore failed: "+f.Reason)
		}
	}
	for i := range r.touched {
		if len(r.touched[i]) > 0 {
			r.status.Waves[i].State = modelfleet.SiteRolledBack
		}
	}
	r.setState(ctx, modelfleet.StateRolledBack, reason)
	return nil
}
