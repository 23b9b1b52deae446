package drivers

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/fleet"
)

// Directory is what the Reconciler needs of the site directory: the same
// outbound calls an agent makes (fleet.Client over HTTP).
type Directory interface {
	List(ctx context.Context) ([]modelfleet.Site, error)
	Desired(ctx context.Context, site string, after int64, wait time.Duration) (modelfleet.Desired, error)
	ReportActual(ctx context.Context, a modelfleet.Actual) error
}

var _ Directory = (*fleet.Client)(nil)

// Reconciler is the agent of every site whose driver is not "agent": for
// each it long-polls the desired state exactly as an agent does, applies it
// through the site's driver and reports what is served. Releases therefore
// neither know nor care which driver a site has.
type Reconciler struct {
	Dir     Directory
	Drivers map[string]Driver // by name; see NewSet
	// Wait is each long poll (default 30s); Resync is how often the site list
	// is re-read and an unchanged desired state re-applied (default 5m), which
	// puts back what someone changed behind modelfleet's back.
	Wait, Resync time.Duration
	// MaxApplies bounds Apply calls in flight across all sites (default 8):
	// ARM throttles per subscription and pushes to one branch contend, so a
	// wave of 500 sites must not become 500 simultaneous calls.
	MaxApplies int
	Log        *slog.Logger
}

type running struct {
	site   modelfleet.Site
	cancel context.CancelFunc
}

// Run reconciles until ctx is done: one goroutine per driver-managed site,
// started and stopped as sites are registered, removed or change driver.
func (r *Reconciler) Run(ctx context.Context) error {
	wait, resync := orDur(r.Wait, 30*time.Second), orDur(r.Resync, 5*time.Minute)
	n := r.MaxApplies
	if n <= 0 {
		n = 8
	}
	sem := make(chan struct{}, n)
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	var wg sync.WaitGroup
	sites := map[string]running{}
	defer func() {
		for _, s := range sites {
			s.cancel()
		}
		wg.Wait()
	}()
	for {
		list, err := r.Dir.List(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("reconciler: list sites", "error", err)
		}
		seen := map[string]bool{}
		for _, s := range list {
			d, ok := r.Drivers[NameOf(s)]
			if NameOf(s) == Agent {
				continue
			}
			if !ok {
				log.Warn("reconciler: site uses a driver that is not configured", "site", s.ID, "driver", s.Driver)
				continue
			}
			seen[s.ID] = true
			if cur, ok := sites[s.ID]; ok && sameTarget(cur.site, s) {
				continue
			} else if ok {
				cur.cancel() // its registration changed: restart with the new one
			}
			sctx, cancel := context.WithCancel(ctx)
			sites[s.ID] = running{site: s, cancel: cancel}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.loop(sctx, s, d, sem, wait, resync, log.With("site", s.ID, "driver", d.Name()))
			}()
		}
		for id, s := range sites {
			if !seen[id] && err == nil {
				s.cancel()
				delete(sites, id)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(resync):
		}
	}
}

// loop is one site's pull loop, the cloud-side twin of the agent's converge.
func (r *Reconciler) loop(ctx context.Context, s modelfleet.Site, d Driver, sem chan struct{}, wait, resync time.Duration, log *slog.Logger) {
	applied := int64(-1)
	var last time.Time
	backoff := time.Second
	retry := func(err error, what string) {
		log.Warn("reconciler: "+what, "error", err, "retry_in", backoff)
		_ = modelfleet.Sleep(ctx, backoff) // the loop checks ctx
		backoff = min(2*backoff, time.Minute)
	}
	for ctx.Err() == nil {
		ds, err := r.Dir.Desired(ctx, s.ID, applied, wait)
		if err != nil {
			if ctx.Err() == nil {
				retry(err, "desired state unreachable")
			}
			continue
		}
		if ds.Revision <= applied && time.Since(last) < resync {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		actual, err := d.Apply(ctx, s, ds)
		<-sem
		if err != nil {
			if ctx.Err() == nil {
				retry(err, "apply failed; will retry")
			}
			continue
		}
		for ctx.Err() == nil {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := r.Dir.ReportActual(rctx, actual)
			cancel()
			if err == nil {
				break
			}
			retry(err, "report actual state")
		}
		if ds.Revision > applied {
			log.Info("reconciler: applied desired state", "revision", ds.Revision)
		}
		applied, last, backoff = ds.Revision, time.Now(), time.Second
	}
}

// sameTarget: a change in driver or labels (which name the cluster, compute
// or path) restarts the site's loop; a heartbeat's LastSeen does not.
func sameTarget(a, b modelfleet.Site) bool {
	return a.Driver == b.Driver && maps.Equal(a.Labels, b.Labels)
}

func orDur(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
