package drivers

import (
	"context"
	"sort"

	"github.com/modelfleet/modelfleet"
)

// Peak is a site's desired state at the height of a release of nv: what it
// serves now plus nv, which is when a site holds the most deployments (the
// superseded version goes once the new one takes all the traffic).
func Peak(current modelfleet.Desired, model string, nv modelfleet.DesiredVersion) modelfleet.Desired {
	peak := modelfleet.Desired{Site: current.Site, Revision: current.Revision, Models: map[string]modelfleet.DesiredModel{}}
	for name, dm := range current.Models {
		dm.Versions = append([]modelfleet.DesiredVersion(nil), dm.Versions...)
		peak.Models[name] = dm
	}
	dm := peak.Models[model]
	for _, v := range dm.Versions {
		if v.Version == nv.Version {
			return peak
		}
	}
	dm.Versions = append(dm.Versions, nv)
	peak.Models[model] = dm
	return peak
}

// Plan checks a release's plan with the driver of each site: sites are
// grouped by driver and each driver sees all of its sites at once, since its
// limits (deployments per cluster, per subscription) are shared. A site
// whose driver is not in set fails the plan: its release could never
// converge there.
func Plan(ctx context.Context, set map[string]Driver, sites []modelfleet.Site, peak map[string]modelfleet.Desired) error {
	by := map[string][]modelfleet.Site{}
	for _, s := range sites {
		by[NameOf(s)] = append(by[NameOf(s)], s)
	}
	names := make([]string, 0, len(by))
	for n := range by {
		names = append(names, n)
	}
	sort.Strings(names) // deterministic: the first failing driver is always the same one
	for _, n := range names {
		d, ok := set[n]
		if !ok {
			return modelfleet.Errorf(modelfleet.EINVALID, "site %q uses driver %q, which this control plane has not configured", by[n][0].ID, n)
		}
		if err := d.Plan(ctx, by[n], peak); err != nil {
			return err
		}
	}
	return nil
}
