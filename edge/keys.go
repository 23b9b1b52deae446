package edge

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"maps"
	"strings"

	"github.com/modelfleet/modelfleet"
)

// keySet holds API keys as sha256 hashes: comparing takes the same time
// whatever the length of the presented key, and the keys themselves are
// never kept, logged or written to disk.
type keySet struct {
	required bool // any key configured, even an empty one: fail closed
	hashes   [][sha256.Size]byte
}

func newKeySet(keys []string) keySet {
	ks := keySet{required: len(keys) > 0}
	for _, k := range keys {
		if k != "" { // an empty key must not let an empty token in
			ks.hashes = append(ks.hashes, sha256.Sum256([]byte(k)))
		}
	}
	return ks
}

// match compares h against every key without stopping at a match, so
// timing does not tell which key or how much of it matched. It returns 1 on
// a match and 0 otherwise.
func (ks *keySet) match(h *[sha256.Size]byte) int {
	m := 0
	for i := range ks.hashes {
		m |= subtle.ConstantTimeCompare(h[:], ks.hashes[i][:])
	}
	return m
}

// bearer hashes the token of an "Authorization: Bearer <token>" header.
func bearer(header string) (h [sha256.Size]byte, ok bool) {
	const scheme = "Bearer "
	if len(header) <= len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return h, false
	}
	return sha256.Sum256([]byte(header[len(scheme):])), true
}

// keyTable is every key set of a router. A request for a model is let in by
// a site-wide key or a key of that model; several keys of a set are valid at
// once, which is how a key is rotated without downtime: add the new key,
// move the clients, remove the old one.
type keyTable struct {
	site   keySet
	models map[string]keySet
	// all is the union, what a request for a model that is not served must
	// present: answering it 404 but a protected model 401 would tell an
	// anonymous caller which models exist.
	all keySet
}

// allows reports whether the Authorization header lets a request for model
// in; known is whether the model is served.
func (kt *keyTable) allows(model string, known bool, header string) bool {
	ms := kt.models[model]
	if !known {
		ms = kt.all
	}
	if !kt.site.required && !ms.required {
		return true
	}
	h, ok := bearer(header)
	if !ok {
		return false
	}
	if !known {
		return ms.match(&h) == 1
	}
	return kt.site.match(&h)|ms.match(&h) == 1
}

// with returns a copy of kt with the key set of model ("" for the
// site-wide set) replaced; an empty set removes it.
func (kt *keyTable) with(model string, ks keySet) *keyTable {
	next := &keyTable{site: kt.site, models: maps.Clone(kt.models)}
	switch {
	case model == "":
		next.site = ks
	case ks.required:
		if next.models == nil {
			next.models = map[string]keySet{}
		}
		next.models[model] = ks
	default:
		delete(next.models, model)
	}
	next.all = keySet{required: next.site.required, hashes: next.site.hashes[:len(next.site.hashes):len(next.site.hashes)]}
	for _, s := range next.models {
		next.all.required = true
		next.all.hashes = append(next.all.hashes, s.hashes...)
	}
	return next
}

// SetKeys replaces the API keys of model, or the site-wide keys when model
// is "". Requests must then present one of them (or a site-wide key) as
// "Authorization: Bearer <key>"; no keys anywhere means no authentication.
// It takes effect for the next request. Agent.SetKeys also persists them.
func (r *Router) SetKeys(model string, keys []string) error {
	if err := checkKeys(model, keys); err != nil {
		return err
	}
	r.setKeys(model, newKeySet(keys))
	return nil
}

func checkKeys(model string, keys []string) error {
	if model != "" {
		if err := modelfleet.ValidateName("model name", model); err != nil {
			return fmt.Errorf("edge: set keys: %w", err)
		}
	}
	for i, k := range keys {
		if k == "" {
			return fmt.Errorf("edge: set keys: %w", modelfleet.Errorf(modelfleet.EINVALID, "api key %d is empty", i))
		}
	}
	return nil
}

func (r *Router) setKeys(model string, ks keySet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.table.Load()
	r.table.Store(&table{routes: old.routes, keys: old.keys.with(model, ks)})
}

// keysFile is keys.json: the sha256 of every API key, hex-encoded, so that
// a restart keeps protecting the models it protected. A random API key
// cannot be recovered from its hash; the file is written 0600 all the same.
type keysFile struct {
	Site   []string            `json:"site,omitempty"`
	Models map[string][]string `json:"models,omitempty"`
}

func hexHashes(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		h := sha256.Sum256([]byte(k))
		out[i] = hex.EncodeToString(h[:])
	}
	return out
}

func parseHashes(hexes []string) (keySet, error) {
	ks := keySet{required: len(hexes) > 0}
	for i, x := range hexes {
		b, err := hex.DecodeString(x)
		if err != nil || len(b) != sha256.Size {
			return keySet{}, fmt.Errorf("key hash %d is not a hex sha256", i)
		}
		ks.hashes = append(ks.hashes, [sha256.Size]byte(b))
	}
	return ks, nil
}
