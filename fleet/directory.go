// Package fleet is the site directory: which factory sites exist, where their
// inference routers answer, their labels, and what each last reported
// serving. Sites report themselves over outbound HTTP; releases read the
// directory to plan their rollout.
package fleet

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/registry"
	"github.com/modelfleet/modelfleet/rollout"
)

// Directory is the durable site directory: the rules of the fleet's
// records over a Store (bbolt or PostgreSQL).
type Directory struct {
	store     Store
	artifacts *registry.BlobStore // the mirror of artifacts sites cannot fetch (artifacts.go)
	now       func() time.Time
	notify    notifier
	// releaseKeys is the signed release key set every desired state
	// carries to its site (SetReleaseKeys); polls bounds the long polls
	// waiting at once (long_poll.go).
	releaseKeys atomic.Pointer[releaseKeySet]
	// apiKeysSigner signs the router API key sets SetAPIKeys writes.
	apiKeysSigner APIKeysSigner
	polls         chan struct{}
	poll          time.Duration // how often a long poll re-reads (Store.Watch)
	statements    statementCache
}

// Open opens (creating if needed) the directory stored in dir/sites.db, the
// embedded default: one process at a time.
func Open(dir string) (*Directory, error) {
	st, err := openBolt(dir)
	if err != nil {
		return nil, err
	}
	d, err := New(st, filepath.Join(dir, "artifacts"))
	if err != nil {
		st.Close()
		return nil, err
	}
	return d, nil
}

// New makes a directory over store, mirroring artifacts in artifactsDir
// (with several replicas: a volume they share). Close closes store.
func New(store Store, artifactsDir string) (*Directory, error) {
	arts, err := registry.OpenBlobStore(artifactsDir)
	if err != nil {
		return nil, fmt.Errorf("fleet: artifact mirror: %w", err)
	}
	d := &Directory{store: store, now: time.Now, artifacts: arts, polls: make(chan struct{}, DefaultMaxLongPolls)}
	d.poll = store.Watch(func(site string) {
		if site == "" {
			d.notify.notifyAll()
			return
		}
		d.notify.notify([]string{site})
	})
	return d, nil
}

// Close releases the store.
func (d *Directory) Close() error { return d.store.Close() }

// Ping reports whether the directory's store can serve (readiness).
func (d *Directory) Ping(ctx context.Context) error { return d.store.Ping(ctx) }

// Put registers or updates a site. Labels are kept when the update carries
// none, so an agent's report does not erase what an operator set.
func (d *Directory) Put(s modelfleet.Site) (modelfleet.Site, error) {
	if err := d.stampSite(&s); err != nil {
		return modelfleet.Site{}, err
	}
	if err := d.store.PutSite(context.Background(), &s); err != nil {
		return modelfleet.Site{}, fmt.Errorf("fleet: put site %q: %w", s.ID, err)
	}
	return s, nil
}

// stampSite validates a site record and sets what the directory owns.
func (d *Directory) stampSite(s *modelfleet.Site) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if s.Window != nil {
		if _, err := rollout.ParseWindow(*s.Window); err != nil {
			return err
		}
	}
	if s.Serving == nil {
		s.Serving = []modelfleet.ServedModel{}
	}
	s.LastSeen = d.now().UTC().Format(time.RFC3339)
	return nil
}

// Get returns one site.
func (d *Directory) Get(id string) (modelfleet.Site, error) {
	return d.store.Site(context.Background(), id)
}

// List returns every site, ordered by ID.
func (d *Directory) List() ([]modelfleet.Site, error) {
	sites, err := d.store.Sites(context.Background())
	if err != nil {
		return nil, fmt.Errorf("fleet: list sites: %w", err)
	}
	return sites, nil
}
