package fleet

import (
	"context"
	"fmt"
	"reflect"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/rollout"
)

// SetAPIKeys sets the hashes of one scope's router API keys in the desired
// state of the sites req addresses, in one transaction; the sites' agents
// take them with their next desired state (docs/security.md, "Router API
// keys"). Releases never touch Desired.APIKeys, so a step, a rollback or a
// finish keeps them. A site whose keys are already those is left as it is
// (no new revision).
func (d *Directory) SetAPIKeys(req modelfleet.APIKeysRequest) (modelfleet.APIKeysResult, error) {
	if err := req.Validate(); err != nil {
		return modelfleet.APIKeysResult{}, err
	}
	sites := req.Sites
	if len(sites) == 0 {
		all, err := d.List()
		if err != nil {
			return modelfleet.APIKeysResult{}, err
		}
		for _, s := range all {
			if req.All || rollout.Matches(req.Selector, s.Labels) {
				sites = append(sites, s.ID)
			}
		}
		if len(sites) == 0 {
			return modelfleet.APIKeysResult{}, modelfleet.Errorf(modelfleet.ENOTFOUND, "no site matches the selector %v", req.Selector)
		}
	}
	// Bounds are checked on what the sites hold now; the update below
	// re-applies the same change under the transaction's locks.
	states, err := d.store.States(context.Background(), sites)
	if err != nil {
		return modelfleet.APIKeysResult{}, fmt.Errorf("fleet: set api keys: %w", err)
	}
	for i, st := range states {
		if err := st.Desired.APIKeys.With(req.Model, req.SHA256).Validate(); err != nil {
			return modelfleet.APIKeysResult{}, fmt.Errorf("site %q: %w", sites[i], err)
		}
	}
	res, err := d.update(sites, func(ds *modelfleet.Desired) (bool, *modelfleet.Conflict) {
		next := ds.APIKeys.With(req.Model, req.SHA256)
		if reflect.DeepEqual(next, ds.APIKeys) {
			return false, nil
		}
		ds.APIKeys = next
		return true, nil
	})
	if err != nil {
		return modelfleet.APIKeysResult{}, err
	}
	return modelfleet.APIKeysResult{Sites: sites, Changed: res.Changed, Unchanged: res.Unchanged}, nil
}
