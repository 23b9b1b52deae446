package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/modelfleet/modelfleet"
)

var (
	sitesBucket      = []byte("sites")
	desiredBucket    = []byte("desired")
	actualBucket     = []byte("actual")
	policiesBucket   = []byte("policies")
	baselinesBucket  = []byte("baselines")
	workloadsBucket  = []byte("workloads")
	statementsBucket = []byte("statements")
)

// boltStore keeps the directory in one bbolt file, and the drift
// monitor's series in another (monitor.db: their writes, one per handful
// of signal messages, do not queue behind the directory's): one process
// only.
type boltStore struct{ db, monitor *bolt.DB }

var _ Store = (*boltStore)(nil)

func openBolt(dir string) (*boltStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("fleet: open directory: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "sites.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("fleet: open directory: %w", err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{sitesBucket, desiredBucket, actualBucket, policiesBucket, baselinesBucket, statementsBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("fleet: init directory: %w", err)
	}
	// Every write rewrites a slot of 2–3 KB in a random place: the free
	// pages it leaves are not listed on disk at each commit (as the
	// embedded queue's, queue/embedded.go); Open rebuilds the list.
	mon, err := bolt.Open(filepath.Join(dir, "monitor.db"), 0o600, &bolt.Options{
		Timeout: 5 * time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("fleet: open directory: %w", err)
	}
	return &boltStore{db: db, monitor: mon}, nil
}

func (b *boltStore) Close() error { return errors.Join(b.db.Close(), b.monitor.Close()) }

func (b *boltStore) Ping(context.Context) error { return nil }

// Watch: every write goes through this process, which wakes its own.
func (b *boltStore) Watch(func(string)) time.Duration { return 0 }

func (b *boltStore) PutSite(_ context.Context, s *modelfleet.Site) error {
	// Batch, not Update: thousands of agents report at once, and one fsync
	// per report caps a directory at a few hundred sites a second. The
	// function is idempotent, as Batch requires.
	return b.db.Batch(func(tx *bolt.Tx) error { return putSite(tx, s) })
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

func (b *boltStore) Site(_ context.Context, id string) (modelfleet.Site, error) {
	var s modelfleet.Site
	err := b.db.View(func(tx *bolt.Tx) error {
		buf := tx.Bucket(sitesBucket).Get([]byte(id))
		if buf == nil {
			return modelfleet.Errorf(modelfleet.ENOTFOUND, "site %q not found", id)
		}
		return json.Unmarshal(buf, &s)
	})
	return s, err
}

func (b *boltStore) Sites(context.Context) ([]modelfleet.Site, error) {
	sites := []modelfleet.Site{}
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(sitesBucket).ForEach(func(_, v []byte) error {
			var s modelfleet.Site
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			sites = append(sites, s)
			return nil
		})
	})
	sort.Slice(sites, func(i, j int) bool { return sites[i].ID < sites[j].ID })
	return sites, err
}

func (b *boltStore) UpdateDesired(_ context.Context, sites []string, f UpdateFunc) (modelfleet.StepResult, []string, error) {
	var res modelfleet.StepResult
	var changed []string
	err := b.db.Update(func(tx *bolt.Tx) error {
		res, changed = modelfleet.StepResult{}, changed[:0]
		bk := tx.Bucket(desiredBucket)
		for _, site := range sites {
			if tx.Bucket(sitesBucket).Get([]byte(site)) == nil {
				return modelfleet.Errorf(modelfleet.ENOTFOUND, "site %q not found", site)
			}
			ds, err := getDesired(bk, site)
			if err != nil {
				return err
			}
			mod, conflict := f(&ds)
			if conflict != nil {
				res.Conflicts = append(res.Conflicts, *conflict)
				continue
			}
			if mod {
				ds.Revision++
				res.Changed++
				changed = append(changed, site)
			} else {
				res.Unchanged++
			}
			buf, err := json.Marshal(ds)
			if err != nil {
				return err
			}
			if err := bk.Put([]byte(site), buf); err != nil {
				return err
			}
		}
		return nil
	})
	return res, changed, err
}

func getDesired(b *bolt.Bucket, site string) (modelfleet.Desired, error) {
	ds := emptyDesired(site)
	if buf := b.Get([]byte(site)); buf != nil {
		if err := json.Unmarshal(buf, &ds); err != nil {
			return ds, fmt.Errorf("decode desired state of %q: %w", site, err)
		}
		if ds.Models == nil {
			ds.Models = map[string]modelfleet.DesiredModel{}
		}
	}
	return ds, nil
}

func (b *boltStore) Desired(_ context.Context, site string) (modelfleet.Desired, error) {
	var ds modelfleet.Desired
	err := b.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(sitesBucket).Get([]byte(site)) == nil {
			return modelfleet.Errorf(modelfleet.ENOTFOUND, "site %q not found", site)
		}
		var err error
		ds, err = getDesired(tx.Bucket(desiredBucket), site)
		return err
	})
	return ds, err
}

// DesiredDoc implements Store.
func (b *boltStore) DesiredDoc(_ context.Context, site string) ([]byte, int64, error) {
	var doc []byte
	err := b.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(sitesBucket).Get([]byte(site)) == nil {
			return modelfleet.Errorf(modelfleet.ENOTFOUND, "site %q not found", site)
		}
		if buf := tx.Bucket(desiredBucket).Get([]byte(site)); buf != nil {
			doc = bytes.Clone(buf) // bbolt's bytes last only as long as the transaction
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	rev, err := docRevision(site, doc)
	if err != nil {
		return nil, 0, fmt.Errorf("decode desired state of %q: %w", site, err)
	}
	return doc, rev, nil
}

func (b *boltStore) ReportActual(_ context.Context, rec *modelfleet.Site, a modelfleet.Actual) error {
	buf, err := json.Marshal(a)
	if err != nil {
		return err
	}
	// Batched: every site reports every interval (and after every apply).
	return b.db.Batch(func(tx *bolt.Tx) error {
		if rec != nil {
			if err := putSite(tx, rec); err != nil {
				return err
			}
		} else if tx.Bucket(sitesBucket).Get([]byte(a.Site)) == nil {
			return modelfleet.Errorf(modelfleet.ENOTFOUND, "site %q not found", a.Site)
		}
		return tx.Bucket(actualBucket).Put([]byte(a.Site), buf)
	})
}

func (b *boltStore) States(_ context.Context, sites []string) ([]SiteState, error) {
	out := make([]SiteState, 0, len(sites))
	err := b.db.View(func(tx *bolt.Tx) error {
		for _, site := range sites {
			ds, err := getDesired(tx.Bucket(desiredBucket), site)
			if err != nil {
				return err
			}
			var a modelfleet.Actual
			if buf := tx.Bucket(actualBucket).Get([]byte(site)); buf != nil {
				if err := json.Unmarshal(buf, &a); err != nil {
					return fmt.Errorf("decode actual state of %q: %w", site, err)
				}
			}
			out = append(out, SiteState{Desired: ds, Actual: a})
		}
		return nil
	})
	return out, err
}

func (b *boltStore) put(bucket, key, value []byte) error {
	return b.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(key, value) })
}

func (b *boltStore) get(bucket, key []byte) ([]byte, error) {
	var v []byte
	err := b.db.View(func(tx *bolt.Tx) error {
		if bk := tx.Bucket(bucket); bk != nil {
			v = append(v, bk.Get(key)...)
			if v == nil && bk.Get(key) != nil {
				v = []byte{}
			}
		}
		return nil
	})
	return v, err
}

func (b *boltStore) PutPolicy(_ context.Context, model string, doc []byte) error {
	return b.put(policiesBucket, []byte(model), doc)
}

func (b *boltStore) Policy(_ context.Context, model string) ([]byte, error) {
	return b.get(policiesBucket, []byte(model))
}

func baselineKey(model, version string) []byte { return []byte(model + "/" + version) }

func (b *boltStore) PutBaseline(_ context.Context, model, version string, doc []byte) error {
	return b.put(baselinesBucket, baselineKey(model, version), doc)
}

func (b *boltStore) Baseline(_ context.Context, model, version string) ([]byte, error) {
	return b.get(baselinesBucket, baselineKey(model, version))
}

// PutStatements implements Store.
func (b *boltStore) PutStatements(_ context.Context, docs map[string][]byte) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(statementsBucket)
		for ref, doc := range docs {
			if bk.Get([]byte(ref)) != nil {
				continue
			}
			if err := bk.Put([]byte(ref), doc); err != nil {
				return err
			}
		}
		return nil
	})
}

// Statements implements Store.
func (b *boltStore) Statements(_ context.Context, refs []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(refs))
	err := b.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(statementsBucket)
		for _, ref := range refs {
			if v := bk.Get([]byte(ref)); v != nil {
				out[ref] = bytes.Clone(v)
			}
		}
		return nil
	})
	return out, err
}

func (b *boltStore) PutWorkload(_ context.Context, rec modelfleet.WorkloadRecord) (modelfleet.WorkloadRecord, bool, error) {
	created := false
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(workloadsBucket)
		if err != nil {
			return err
		}
		key := []byte(rec.Name + "/" + rec.Version)
		if buf := bk.Get(key); buf != nil {
			var old modelfleet.WorkloadRecord
			if err := json.Unmarshal(buf, &old); err != nil {
				return fmt.Errorf("decode workload %s:%s: %w", rec.Name, rec.Version, err)
			}
			rec = old
			return nil
		}
		created = true
		buf, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return bk.Put(key, buf)
	})
	return rec, created, err
}

func (b *boltStore) Workload(_ context.Context, name, version string) (modelfleet.WorkloadRecord, bool, error) {
	var rec modelfleet.WorkloadRecord
	buf, err := b.get(workloadsBucket, []byte(name+"/"+version))
	if err != nil || buf == nil {
		return rec, false, err
	}
	return rec, true, json.Unmarshal(buf, &rec)
}

func (b *boltStore) Workloads(context.Context) ([]modelfleet.WorkloadRecord, error) {
	out := []modelfleet.WorkloadRecord{}
	err := b.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(workloadsBucket)
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(_, v []byte) error {
			var rec modelfleet.WorkloadRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			out = append(out, rec)
			return nil
		})
	})
	return out, err
}

func (b *boltStore) Revision(_ context.Context, site string) (int64, error) {
	var rev int64
	err := b.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(sitesBucket).Get([]byte(site)) == nil {
			return modelfleet.Errorf(modelfleet.ENOTFOUND, "site %q not found", site)
		}
		var err error
		if rev, err = docRevision(site, tx.Bucket(desiredBucket).Get([]byte(site))); err != nil {
			return fmt.Errorf("decode desired state of %q: %w", site, err)
		}
		return nil
	})
	return rev, err
}

func (b *boltStore) Progress(_ context.Context, sites []string, model string) ([]SiteProgress, error) {
	out := make([]SiteProgress, 0, len(sites))
	err := b.db.View(func(tx *bolt.Tx) error {
		desired, actual := tx.Bucket(desiredBucket), tx.Bucket(actualBucket)
		for _, site := range sites {
			key := []byte(site)
			p, err := decodeProgress(site, model, desired.Get(key), actual.Get(key))
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return nil
	})
	return out, err
}
