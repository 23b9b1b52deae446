package drivers

import (
	"context"

	"github.com/modelfleet/modelfleet"
)

// Nop is the driver of sites whose own agent applies their desired state:
// there is no limit to plan against and nothing to do from the cloud. Its
// Apply reports the desired state as served, which makes it a dry run for
// tests; the Reconciler never runs agent sites.
type Nop struct{ DriverName string }

var _ Driver = Nop{}

// Name returns DriverName, or "agent".
func (n Nop) Name() string {
	if n.DriverName == "" {
		return Agent
	}
	return n.DriverName
}

// Plan accepts any plan.
func (Nop) Plan(context.Context, []modelfleet.Site, map[string]modelfleet.Desired) error { return nil }

// Apply reports d as served.
func (Nop) Apply(_ context.Context, site modelfleet.Site, d modelfleet.Desired) (modelfleet.Actual, error) {
	return Served(site.ID, d, nil), nil
}

// Served is the Actual of a site that serves d, except that a model with an
// error in errs is reported with that error and no versions (what it still
// serves is unknown to the driver). Drivers that cannot observe live figures
// (ARM, git) report zero requests; the site's own signals carry those.
func Served(site string, d modelfleet.Desired, errs map[string]string) modelfleet.Actual {
	a := modelfleet.Actual{Site: site, Revision: d.Revision, Models: map[string]modelfleet.ActualModel{}}
	for name, dm := range d.Models {
		am := modelfleet.ActualModel{Versions: []modelfleet.ServedVersion{}, Error: errs[name]}
		for _, v := range dm.Versions {
			if am.Error != "" {
				break
			}
			am.Versions = append(am.Versions, modelfleet.ServedVersion{Version: v.Version, Digest: v.Digest, Weight: v.Weight})
		}
		a.Models[name] = am
	}
	return a
}
