package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"

	"github.com/modelfleet/modelfleet"
)

const keysFileName = "keys.json"

// SetKeys replaces the API keys of model, or the site-wide keys when model
// is "", for the next request and for every later start: their sha256 are
// written to keys.json, the keys themselves nowhere (nor to the log). A
// request for a model is let in by one of its keys or a site-wide key;
// several keys are valid at once, so rotating is SetKeys(m, old+new), moving
// the clients, then SetKeys(m, new). No keys remove the set. Keys may be set
// before the model is deployed.
func (a *Agent) SetKeys(model string, keys []string) error {
	if err := checkKeys(model, keys); err != nil {
		return err
	}
	a.keysMu.Lock()
	defer a.keysMu.Unlock()
	next := keysFile{Site: a.keys.Site, Models: maps.Clone(a.keys.Models)}
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
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return fmt.Errorf("edge: set keys: %w", err)
	}
	if err := WriteFileAtomic(filepath.Join(a.store.Dir(), keysFileName), b); err != nil {
		return fmt.Errorf("edge: set keys: %w", err)
	}
	a.keys = next
	a.router.setKeys(model, newKeySet(keys))
	scope := model
	if scope == "" {
		scope = "(site)"
	}
	a.log.Info("edge: api keys set", "model", scope, "keys", len(keys))
	return nil
}

// loadKeys installs the keys persisted by SetKeys. A keys.json that does not
// parse is an error: starting without it would open protected models.
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
	site, err := parseHashes(f.Site)
	if err != nil {
		return fmt.Errorf("edge: open site %q: %s: site keys: %w", a.site, keysFileName, err)
	}
	a.router.setKeys("", site)
	for model, hashes := range f.Models {
		ks, err := parseHashes(hashes)
		if err == nil {
			err = modelfleet.ValidateName("model name", model)
		}
		if err != nil {
			return fmt.Errorf("edge: open site %q: %s: keys of %q: %w", a.site, keysFileName, model, err)
		}
		a.router.setKeys(model, ks)
	}
	a.keys = f
	return nil
}
