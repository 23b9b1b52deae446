package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
)

// rollbackAtOnce versions restoring every touched site in one step, all
// waves at once, then one wait for convergence (rollbackAll), instead of
// one restore and one wait per wave, last wave first (replay safety:
// recorded histories rolled back wave by wave).
const rollbackAtOnce = "release-rollback-at-once"

// rollbackAwaitInOne versions rollbackAll restoring and waiting in one
// activity (RollbackAndAwait) instead of RollbackSites then AwaitConverged
// (replay safety: recorded histories scheduled those two).
const rollbackAwaitInOne = "release-rollback-await-in-one"

// rollbackAll restores every site the release touched in one directory
// step — whose request the fleet client splits if it is too large for one
// call — then waits once for all of them to converge, both in one activity
// (RollbackAndAwait). A rollback is the release's emergency exit: waiting
// for the last wave to converge before restoring the first would keep bad
// traffic on the earlier waves for nothing, since each site's restore is
// independent.
func (r *release) rollbackAll(ctx workflow.Context, reason string) error {
	var all []string
	for _, s := range r.touched {
		all = append(all, s...)
	}
	if len(all) > 0 {
		p, err := r.restoreSites(ctx, all)
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

// restoreSites restores sites and waits for them to converge: in one activity,
// or, replaying a history recorded before rollbackAwaitInOne, in two.
func (r *release) restoreSites(ctx workflow.Context, sites []string) (modelfleet.Progress, error) {
	lease := modelfleet.LeaseRequest{Release: r.id, Model: r.in.Model.Name, Sites: sites}
	if workflow.GetVersion(ctx, rollbackAwaitInOne, workflow.DefaultVersion, 1) < 1 {
		var res modelfleet.StepResult
		if err := workflow.ExecuteActivity(r.cloudCtx(ctx), cloud.RollbackSites, lease).Get(ctx, &res); err != nil {
			return modelfleet.Progress{}, err
		}
		return r.await(ctx, sites, ConvergeTimeout)
	}
	var p modelfleet.Progress
	err := workflow.ExecuteActivity(r.awaitCtx(ctx, ConvergeTimeout), cloud.RollbackAndAwait, activities.RollbackRequest{
		LeaseRequest: lease, Version: r.in.Model.Version, Timeout: ConvergeTimeout,
	}).Get(ctx, &p)
	return p, err
}
