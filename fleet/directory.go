// Package fleet is the site directory: which factory sites exist, where their
// inference routers answer, their labels, and what each last reported
// serving. Sites report themselves over outbound HTTP; releases read the
// directory to plan their rollout.
package fleet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/registry"
	"github.com/modelfleet/modelfleet/rollout"
)

var sitesBucket = []byte("sites")

// Directory is the durable site directory, stored in one bbolt file.
type Directory struct {
	db        *bolt.DB
	artifacts *registry.BlobStore // the mirror of artifacts sites cannot fetch (artifacts.go)
	now       func() time.Time
	notify    notifier
	// releaseKeys is the signed release key set every desired state
	// carries to its site (SetReleaseKeys); polls bounds the long polls
	// waiting at once (long_poll.go).
	releaseKeys *modelfleet.Envelope
	polls       chan struct{}
}

// Open opens (creating if needed) the directory stored in dir/sites.db.
func Open(dir string) (*Directory, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("fleet: open directory: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "sites.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("fleet: open directory: %w", err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{sitesBucket, desiredBucket, actualBucket, policiesBucket, baselinesBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("fleet: init directory: %w", err)
	}
	arts, err := registry.OpenBlobStore(filepath.Join(dir, "artifacts"))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("fleet: artifact mirror: %w", err)
	}
	return &Directory{db: db, now: time.Now, artifacts: arts, polls: make(chan struct{}, DefaultMaxLongPolls)}, nil
}

// Close releases the database file.
func (d *Directory) Close() error { return d.db.Close() }

// Put registers or updates a site. Labels are kept when the update carries
// none, so an agent's report does not erase what an operator set.
func (d *Directory) Put(s modelfleet.Site) (modelfleet.Site, error) {
	if err := d.stampSite(&s); err != nil {
		return modelfleet.Site{}, err
	}
	// Batch, not Update: thousands of agents report at once, and one fsync
	// per report caps a directory at a few hundred sites a second. The
	// function is idempotent, as Batch requires.
	err := d.db.Batch(func(tx *bolt.Tx) error { return putSite(tx, &s) })
	if err != nil {
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

// putSite stores s in tx, keeping the stored labels when s has none. It
// may run twice for one s (Batch retries), with the same result.
func putSite(tx *bolt.Tx, s *modelfleet.Site) error {
	b := tx.Bucket(sitesBucket)
	if old := b.Get([]byte(s.ID)); old != nil && len(s.Labels) == 0 {
		var prev modelfleet.Site
		if err := json.Unmarshal(old, &prev); err == nil {
			s.Labels = prev.Labels
		}
	}
	buf, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return b.Put([]byte(s.ID), buf)
}

// Get returns one site.
func (d *Directory) Get(id string) (modelfleet.Site, error) {
	var s modelfleet.Site
	err := d.db.View(func(tx *bolt.Tx) error {
		buf := tx.Bucket(sitesBucket).Get([]byte(id))
		if buf == nil {
			return modelfleet.Errorf(modelfleet.ENOTFOUND, "site %q not found", id)
		}
		return json.Unmarshal(buf, &s)
	})
	return s, err
}

// List returns every site, ordered by ID.
func (d *Directory) List() ([]modelfleet.Site, error) {
	sites := []modelfleet.Site{}
	err := d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(sitesBucket).ForEach(func(_, v []byte) error {
			var s modelfleet.Site
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			sites = append(sites, s)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: list sites: %w", err)
	}
	sort.Slice(sites, func(i, j int) bool { return sites[i].ID < sites[j].ID })
	return sites, nil
}
