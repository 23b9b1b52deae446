// Package drivers puts every way a release can reach a site behind one
// interface, chosen per site by its registration's driver: "agent" (the
// site's own agent pulls its desired state; nothing to do in the cloud),
// "amlarc" (Azure ML Kubernetes online endpoints on an Arc-connected
// cluster) or "gitops" (manifests committed to a fleet repository). A
// Reconciler drives the non-agent sites through the same desired-state
// channel the agents use, so releases do not know which driver a site has.
package drivers

import (
	"context"

	"github.com/modelfleet/modelfleet"
)

// Driver applies a site's desired state by some means other than its agent.
// Its methods take domain types only, so providers (drivers/amlarc,
// drivers/gitops) need not import this package and the factory can.
type Driver interface {
	// Name is the driver's name as sites register it.
	Name() string
	// Plan checks, before a release changes anything, that the sites'
	// desired states at the release's peak (see Peak) fit the target's hard
	// limits; the error names the limit. Sites absent from peak count as
	// serving nothing.
	Plan(ctx context.Context, sites []modelfleet.Site, peak map[string]modelfleet.Desired) error
	// Apply makes site serve d and returns what it serves. A failure that
	// retrying cannot fix (a deployment that failed to provision) is
	// reported per model in the Actual with a nil error; a non-nil error
	// means "retry later" (throttling, a conflict, an unreachable remote),
	// and the revision is not reported as applied.
	Apply(ctx context.Context, site modelfleet.Site, d modelfleet.Desired) (modelfleet.Actual, error)
}
