package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/modelfleet/modelfleet"
)

const keysFileName = "keys.json"

// The router's API keys come from three layers. For each scope — the
// site-wide set, and each model's — the first layer that sets it wins:
//
//  1. configured: the mounted keys file (Config.KeysFile, re-read when it
//     changes) and Config.Keys (site-wide);
//  2. the control plane: the hashes the site's desired state carries
//     (SetDesiredKeys);
//  3. local: what SetKeys set at this site.
//
// A scope a layer does not set is left to the next, so removing a model's
// keys from the desired state gives that model back its local keys, if it
// has any. A request for a model is let in by a key of the model's scope or
// of the site-wide scope, each as its winning layer says.
type keyLayer struct {
	site   *keySet // nil: the layer does not set site-wide keys
	models map[string]keySet
}

// effectiveKeys merges layers, first wins per scope.
func effectiveKeys(layers ...keyLayer) *keyTable {
	var site keySet
	for _, l := range layers {
		if l.site != nil {
			site = *l.site
			break
		}
	}
	models := map[string]keySet{}
	for i := len(layers) - 1; i >= 0; i-- {
		maps.Copy(models, layers[i].models)
	}
	return newKeyTable(site, models)
}

// layerOf makes a layer of hex hashes, scopes with none left out.
func layerOf(site []string, models map[string][]string) (keyLayer, error) {
	var l keyLayer
	if len(site) > 0 {
		ks, err := parseHashes(site)
		if err != nil {
			return l, fmt.Errorf("site keys: %w", err)
		}
		l.site = &ks
	}
	for m, hs := range models {
		if len(hs) == 0 {
			continue
		}
		if err := modelfleet.ValidateName("model name", m); err != nil {
			return l, err
		}
		ks, err := parseHashes(hs)
		if err != nil {
			return l, fmt.Errorf("keys of %q: %w", m, err)
		}
		if l.models == nil {
			l.models = map[string]keySet{}
		}
		l.models[m] = ks
	}
	return l, nil
}

// desiredLayer is the layer of the hashes a desired state carries.
func desiredLayer(k *modelfleet.APIKeys) (keyLayer, error) {
	if k == nil {
		return keyLayer{}, nil
	}
	models := make(map[string][]string, len(k.Models))
	for m, h := range k.Models {
		models[m] = h.SHA256
	}
	return layerOf(k.SHA256, models)
}

// installKeys publishes the merged layers to the router. Hold keysMu.
func (a *Agent) installKeys() {
	a.router.setKeyTable(effectiveKeys(a.configured, a.fromDesired, a.local))
}

// SetKeys replaces the API keys of model, or the site-wide keys when model
// is "", for the next request and for every later start: their sha256 are
// written to keys.json, the keys themselves nowhere (nor to the log). A
// request for a model is let in by one of its keys or a site-wide key;
// several keys are valid at once, so rotating is SetKeys(m, old+new), moving
// the clients, then SetKeys(m, new). No keys remove the set. Keys may be set
// before the model is deployed. These are the site's local keys: a scope
// the keys file or the desired state sets ignores them (keyLayer).
func (a *Agent) SetKeys(model string, keys []string) error {
	if err := checkKeys(model, keys); err != nil {
		return err
	}
	a.keysMu.Lock()
	defer a.keysMu.Unlock()
	next := a.keys
	next.Models = maps.Clone(a.keys.Models)
	hashes := hexHashes(keys)
	switch {
	case model == "":
		next.Site = hashes
	case len(keys) == 0:
		delete(next.Models, model)
	default:
		if next.Models == nil {
			next.Models = map[string][]string{}
		}
		next.Models[model] = hashes
	}
	local, err := layerOf(next.Site, next.Models)
	if err != nil {
		return fmt.Errorf("edge: set keys: %w", err)
	}
	if err := a.writeKeys(next); err != nil {
		return fmt.Errorf("edge: set keys: %w", err)
	}
	a.keys, a.local = next, local
	a.installKeys()
	scope := model
	if scope == "" {
		scope = "(site)"
	}
	a.log.Info("edge: api keys set", "model", scope, "keys", len(keys))
	return nil
}

// SetDesiredKeys makes the router ask for the keys whose hashes the site's
// desired state carries (nil: the control plane sets none), persisted in
// keys.json so that a site restarted offline keeps asking for them. It
// changes nothing, and writes nothing, when they are the ones it has. A set
// that does not validate is refused whole: the router keeps the keys it
// has.
func (a *Agent) SetDesiredKeys(k *modelfleet.APIKeys) error {
	return a.setDesiredKeys(k, time.Time{})
}

// SetSignedDesiredKeys is SetDesiredKeys for a set the control plane
// signed at signedAt (modelfleet.APIKeysStatement, verified by the
// caller); the time is kept with the set in keys.json, so that an older
// signed set is recognised as one after a restart too (DesiredKeys).
func (a *Agent) SetSignedDesiredKeys(k *modelfleet.APIKeys, signedAt time.Time) error {
	return a.setDesiredKeys(k, signedAt.UTC())
}

// DesiredKeys returns the desired state's key set in force (nil: none)
// and when the statement that vouched for it was signed (zero: unsigned).
func (a *Agent) DesiredKeys() (*modelfleet.APIKeys, time.Time) {
	a.keysMu.Lock()
	defer a.keysMu.Unlock()
	return a.keys.Desired.Clone(), a.keys.DesiredSignedAt
}

func (a *Agent) setDesiredKeys(k *modelfleet.APIKeys, signedAt time.Time) error {
	if err := k.Validate(); err != nil {
		return fmt.Errorf("edge: api keys of the desired state: %w", err)
	}
	// Compare in the form keys.json keeps (empty lists and maps are
	// dropped there), or every poll after a restart would rewrite it.
	if k = k.Clone(); k != nil && len(k.Models) == 0 {
		k.Models = nil
	}
	if k.Empty() {
		k = nil
	}
	a.keysMu.Lock()
	defer a.keysMu.Unlock()
	if reflect.DeepEqual(a.keys.Desired, k) && a.keys.DesiredSignedAt.Equal(signedAt) {
		return nil
	}
	l, err := desiredLayer(k)
	if err != nil {
		return fmt.Errorf("edge: api keys of the desired state: %w", err)
	}
	next := a.keys
	next.Desired, next.DesiredSignedAt = k, signedAt
	if err := a.writeKeys(next); err != nil {
		return fmt.Errorf("edge: api keys of the desired state: %w", err)
	}
	a.keys, a.fromDesired = next, l
	a.installKeys()
	n := 0
	if k != nil {
		n = len(k.Models)
	}
	a.log.Info("edge: api keys from the desired state applied", "site_wide", k != nil && len(k.SHA256) > 0, "models", n)
	return nil
}

// writeKeys persists f as keys.json. Hold keysMu.
func (a *Agent) writeKeys(f keysFile) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(a.store.Dir(), keysFileName), b)
}

// loadKeys reads the local and desired-state layers persisted in
// keys.json. A keys.json that does not parse is an error: starting without
// it would open protected models.
func (a *Agent) loadKeys() error {
	b, err := os.ReadFile(filepath.Join(a.store.Dir(), keysFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("edge: open site %q: %w", a.site, err)
	}
	var f keysFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("edge: open site %q: parse %s: %w", a.site, keysFileName, err)
	}
	local, err := layerOf(f.Site, f.Models)
	if err != nil {
		return fmt.Errorf("edge: open site %q: %s: %w", a.site, keysFileName, err)
	}
	if err := f.Desired.Validate(); err != nil {
		return fmt.Errorf("edge: open site %q: %s: desired: %w", a.site, keysFileName, err)
	}
	fromDesired, err := desiredLayer(f.Desired)
	if err != nil {
		return fmt.Errorf("edge: open site %q: %s: desired: %w", a.site, keysFileName, err)
	}
	a.keys, a.local, a.fromDesired = f, local, fromDesired
	return nil
}
