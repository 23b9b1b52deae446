// Package agents hosts many real edge agents (agent.Site) in one process,
// as the benchmarks run a fleet on one machine: bench/rollout's stack and
// the chaos suite's fleet process (`make chaos-store` with -fleet-sites).
package agents

import (
	"context"
	"errors"
	"sync"

	"github.com/modelfleet/modelfleet/agent"
)

// Open opens n sites with open(i), a few at a time (opening a site is
// mostly mkdir and a listener: a few at a time keeps the disk busy
// without a thousand goroutines queueing on it). On any error it closes
// those it opened and returns every error.
func Open(n int, open func(i int) (*agent.Site, error)) ([]*agent.Site, error) {
	sites := make([]*agent.Site, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			sites[i], errs[i] = open(i)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, s := range sites {
			if s != nil {
				s.Edge.Close()
			}
		}
		return nil, err
	}
	return sites, nil
}

// Run runs every site's agent (Site.Run) until the returned stop is
// called; stop waits for them and closes their stores.
func Run(sites []*agent.Site) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	for _, s := range sites {
		running.Go(func() { _ = s.Run(ctx) })
	}
	return func() {
		cancel()
		running.Wait()
		for _, s := range sites {
			s.Edge.Close()
		}
	}
}
