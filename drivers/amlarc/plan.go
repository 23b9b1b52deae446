package amlarc

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/modelfleet/modelfleet"
)

// Limits are Azure ML's hard limits for Kubernetes online endpoints
// (how-to-manage-quotas, "online endpoints and batch endpoints"). The
// per-subscription ones are regional and can be raised by a support
// request; the per-cluster ones cannot.
type Limits struct {
	DeploymentsPerEndpoint int // 20
	EndpointsPerCluster    int // 60
	DeploymentsPerCluster  int // 100
	EndpointsPerRegion     int // 100 per subscription and region
	DeploymentsPerRegion   int // 500 per subscription and region
}

// DefaultLimits are Azure's defaults.
var DefaultLimits = Limits{DeploymentsPerEndpoint: 20, EndpointsPerCluster: 60, DeploymentsPerCluster: 100, EndpointsPerRegion: 100, DeploymentsPerRegion: 500}

func (l Limits) withDefaults() Limits {
	or := func(v, def int) int {
		if v <= 0 {
			return def
		}
		return v
	}
	return Limits{
		DeploymentsPerEndpoint: or(l.DeploymentsPerEndpoint, DefaultLimits.DeploymentsPerEndpoint),
		EndpointsPerCluster:    or(l.EndpointsPerCluster, DefaultLimits.EndpointsPerCluster),
		DeploymentsPerCluster:  or(l.DeploymentsPerCluster, DefaultLimits.DeploymentsPerCluster),
		EndpointsPerRegion:     or(l.EndpointsPerRegion, DefaultLimits.EndpointsPerRegion),
		DeploymentsPerRegion:   or(l.DeploymentsPerRegion, DefaultLimits.DeploymentsPerRegion),
	}
}

// usage counts endpoints and deployments.
type usage struct{ endpoints, deployments int }

// Plan checks that the sites' desired states at a release's peak fit
// Azure's limits, counting with them what the workspace already holds on
// behalf of other sites (and anything not made by modelfleet on the same
// clusters). The packing it checks is the one Apply makes: one endpoint per
// (cluster, model) — the traffic map is per endpoint, so it can carry one
// model's A/B split only — every version of the model a deployment in that
// endpoint, and a superseded version's deployment deleted as soon as it
// leaves the desired state, so a release adds at most one deployment per
// site and only while it is under way.
func (d *Driver) Plan(ctx context.Context, sites []modelfleet.Site, peak map[string]modelfleet.Desired) error {
	l := d.cfg.Limits
	planned := map[string]bool{}
	clusters := map[string]*usage{} // by compute
	var region usage
	for _, s := range sites {
		planned[s.ID] = true
		c := computeOf(s)
		if clusters[c] == nil {
			clusters[c] = &usage{}
		}
		ds := peak[s.ID]
		for _, model := range sortedModels(ds) {
			vs := ds.Models[model].Versions
			if len(vs) == 0 {
				continue
			}
			ep := EndpointName(s.ID, model)
			for _, v := range vs {
				if err := checkNames(ep, DeploymentName(v.Version, v.Digest)); err != nil {
					return modelfleet.Errorf(modelfleet.EINVALID, "%s", err.Error())
				}
			}
			if len(vs) > l.DeploymentsPerEndpoint {
				return limitErr("deployments per endpoint", l.DeploymentsPerEndpoint, fmt.Sprintf("model %q at site %q", model, s.ID), len(vs))
			}
			clusters[c].endpoints++
			clusters[c].deployments += len(vs)
			region.endpoints++
			region.deployments += len(vs)
		}
	}
	// What the workspace holds for sites outside the plan counts too.
	if err := d.existing(ctx, planned, clusters, &region); err != nil {
		return fmt.Errorf("amlarc: plan: list the workspace's endpoints: %w", err)
	}
	for _, c := range sortedKeys(clusters) {
		u := clusters[c]
		if u.endpoints > l.EndpointsPerCluster {
			return limitErr("endpoints per cluster", l.EndpointsPerCluster, fmt.Sprintf("cluster %q", c), u.endpoints)
		}
		if u.deployments > l.DeploymentsPerCluster {
			return limitErr("deployments per cluster", l.DeploymentsPerCluster, fmt.Sprintf("cluster %q", c), u.deployments)
		}
	}
	if region.endpoints > l.EndpointsPerRegion {
		return limitErr("endpoints per subscription and region", l.EndpointsPerRegion, fmt.Sprintf("region %q", d.cfg.Location), region.endpoints)
	}
	if region.deployments > l.DeploymentsPerRegion {
		return limitErr("deployments per subscription and region", l.DeploymentsPerRegion, fmt.Sprintf("region %q", d.cfg.Location), region.deployments)
	}
	return nil
}

// existing adds to the counts the endpoints (and their deployments) that
// the workspace holds for anything but the planned sites.
func (d *Driver) existing(ctx context.Context, planned map[string]bool, clusters map[string]*usage, region *usage) error {
	computes := map[string]string{} // compute ARM id -> compute name, for planned clusters
	for c := range clusters {
		computes[strings.ToLower(d.computeID(c))] = c // ARM IDs compare case-insensitively
	}
	pager := d.endpoints.NewListPager(d.cfg.ResourceGroup, d.cfg.Workspace, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, ep := range page.Value {
			if ep == nil || ep.Name == nil || planned[tag(ep.Tags, tagSite)] {
				continue
			}
			n, err := d.countDeployments(ctx, *ep.Name)
			if err != nil {
				return err
			}
			region.endpoints++
			region.deployments += n
			if ep.Properties != nil && ep.Properties.Compute != nil {
				if c, ok := computes[strings.ToLower(*ep.Properties.Compute)]; ok {
					clusters[c].endpoints++
					clusters[c].deployments += n
				}
			}
		}
	}
	return nil
}

func (d *Driver) countDeployments(ctx context.Context, endpoint string) (int, error) {
	n := 0
	pager := d.deployments.NewListPager(d.cfg.ResourceGroup, d.cfg.Workspace, endpoint, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return 0, err
		}
		n += len(page.Value)
	}
	return n, nil
}

func limitErr(limit string, max int, where string, need int) error {
	return modelfleet.Errorf(modelfleet.EINVALID, "release plan exceeds the Azure ML limit %q (%d): %s would need %d", limit, max, where, need)
}

func sortedModels(ds modelfleet.Desired) []string {
	names := make([]string, 0, len(ds.Models))
	for n := range ds.Models {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
