package drivers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/fleet"
)

// DesiredStates reads a site's current desired state (fleet.Client).
type DesiredStates interface {
	Desired(ctx context.Context, site string, after int64, wait time.Duration) (modelfleet.Desired, error)
}

var _ DesiredStates = (*fleet.Client)(nil)

var _ modelfleet.PlanChecker = (*Check)(nil)

// Check asks each site's deployment driver, before a release changes
// anything, whether the release fits the driver's hard limits (Azure ML's
// endpoint quotas for amlarc, renderable manifests for gitops): a rollout
// refused at the start is better than one stuck half-way at wave 3.
type Check struct {
	// Drivers are the configured drivers by name (NewSet). Nil: the
	// agent only, so a release to a site that names another driver fails
	// its plan — no one would ever apply it there.
	Drivers map[string]Driver
	// Desired reads what each driver-managed site serves now; the release
	// adds its version to that (Peak). Required when Drivers holds
	// more than the agent.
	Desired DesiredStates
	// Concurrency bounds the desired-state reads in flight (default 16).
	Concurrency int
}

// CheckPlan checks a release of nv to sites with their drivers.
func (c *Check) CheckPlan(ctx context.Context, model string, nv modelfleet.DesiredVersion, sites []modelfleet.Site) error {
	set := c.Drivers
	if set == nil {
		set = map[string]Driver{Agent: Nop{}}
	}
	// Agent sites plan against nothing; sites of unconfigured drivers fail
	// in Plan. Only the rest need their desired state.
	var managed []modelfleet.Site
	for _, s := range sites {
		if _, ok := set[NameOf(s)]; ok && NameOf(s) != Agent {
			managed = append(managed, s)
		}
	}
	peak := map[string]modelfleet.Desired{}
	if len(managed) > 0 {
		if c.Desired == nil {
			return fmt.Errorf("drivers: no desired-state reader configured to check %d driver-managed sites", len(managed))
		}
		current, err := readDesired(ctx, c.Desired, managed, c.Concurrency)
		if err != nil {
			return err
		}
		for _, s := range managed {
			peak[s.ID] = Peak(current[s.ID], model, nv)
		}
	}
	return Plan(ctx, set, sites, peak)
}

// readDesired reads the sites' current desired states, a few at a time.
func readDesired(ctx context.Context, r DesiredStates, sites []modelfleet.Site, concurrency int) (map[string]modelfleet.Desired, error) {
	if concurrency <= 0 {
		concurrency = 16
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		out   = make(map[string]modelfleet.Desired, len(sites))
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, concurrency)
	)
	for _, s := range sites {
		wg.Add(1)
		sem <- struct{}{}
		go func(id string) {
			defer func() { <-sem; wg.Done() }()
			// after=-1, wait=0: the current state now, no long poll.
			d, err := r.Desired(ctx, id, -1, 0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = fmt.Errorf("drivers: desired state of site %q: %w", id, err)
					cancel()
				}
				return
			}
			out[id] = d
		}(s.ID)
	}
	wg.Wait()
	return out, first
}
