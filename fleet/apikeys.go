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
		if err := d.signedAPIKeys(sites[i], &st.Desired).With(req.Model, req.SHA256).Validate(); err != nil {
			return modelfleet.APIKeysResult{}, fmt.Errorf("site %q: %w", sites[i], err)
		}
	}
	signer := d.apiKeysSigner
	var signErr error
	res, err := d.update(sites, func(ds *modelfleet.Desired) (bool, *modelfleet.Conflict) {
		next := d.signedAPIKeys(ds.Site, ds).With(req.Model, req.SHA256)
		if reflect.DeepEqual(next, ds.APIKeys) && (signer == nil || ds.APIKeysStatement != nil) {
			return false, nil
		}
		if signer != nil {
			env, err := signer.SignAPIKeys(modelfleet.APIKeysStatement{Site: ds.Site, Keys: next, SignedAt: d.now().UTC()})
			if err != nil {
				signErr = err
				return false, &modelfleet.Conflict{Site: ds.Site, Holder: "api keys not signed"}
			}
			ds.APIKeysStatement = env
		}
		ds.APIKeys = next
		return true, nil
	})
	if err == nil && signErr != nil {
		err = fmt.Errorf("fleet: sign api keys: %w", signErr)
	}
	if err != nil {
		return modelfleet.APIKeysResult{}, err
	}
	return modelfleet.APIKeysResult{Sites: sites, Changed: res.Changed, Unchanged: res.Unchanged}, nil
}

// APIKeysSigner signs a site's router API key set, and checks a signed one,
// with the control plane's release keys (app.ReleaseKeys).
type APIKeysSigner interface {
	SignAPIKeys(st modelfleet.APIKeysStatement) (*modelfleet.Envelope, error)
	VerifyAPIKeys(env *modelfleet.Envelope, site string) (modelfleet.APIKeysStatement, error)
}

// SetAPIKeysSigner makes SetAPIKeys sign every site's key set it writes
// (Desired.APIKeysStatement), which sites with pinned release keys
// require; call it before serving.
func (d *Directory) SetAPIKeysSigner(s APIKeysSigner) { d.apiKeysSigner = s }

// signedAPIKeys is the key set a change of one scope starts from. With a
// signer it is what the site's statement signed, if the signer's keys
// verify it: a set changed in the store behind the gateway's back (or an
// unsigned one, written before sets were signed) is not signed along with
// the scope set now; only that scope is kept, and the others must be set
// again.
func (d *Directory) signedAPIKeys(site string, ds *modelfleet.Desired) *modelfleet.APIKeys {
	if d.apiKeysSigner == nil {
		return ds.APIKeys
	}
	st, err := d.apiKeysSigner.VerifyAPIKeys(ds.APIKeysStatement, site)
	if err != nil {
		return nil
	}
	return st.Keys
}
