package edge

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"maps"
	"strings"
	"time"

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
	// internal is the hash of the router's own key (Router.InternalKey),
	// valid for every model whatever the sets say: the workloads the agent
	// hosts itself use it. Zero: none.
	internal [sha256.Size]byte
}

// isInternal reports whether h is the router's own key.
func (kt *keyTable) isInternal(h *[sha256.Size]byte) bool {
	var zero [sha256.Size]byte
	return kt.internal != zero && subtle.ConstantTimeCompare(h[:], kt.internal[:]) == 1
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
	if kt.isInternal(&h) {
		return true
	}
	if !known {
		return ms.match(&h) == 1
	}
	return kt.site.match(&h)|ms.match(&h) == 1
}

// allowsAny reports whether the Authorization header holds any key of the
// table, site-wide or a model's: what GET /api/models asks for, since the
// list names every model. No keys anywhere: anyone may list.
func (kt *keyTable) allowsAny(header string) bool {
	if !kt.all.required {
		return true
	}
	h, ok := bearer(header)
	return ok && (kt.isInternal(&h) || kt.all.match(&h) == 1)
}

// with returns a copy of kt with the key set of model ("" for the
// site-wide set) replaced; an empty set removes it.
func (kt *keyTable) with(model string, ks keySet) *keyTable {
	site, models := kt.site, maps.Clone(kt.models)
	switch {
	case model == "":
		site = ks
	case ks.required:
		if models == nil {
			models = map[string]keySet{}
		}
		models[model] = ks
	default:
		delete(models, model)
	}
	next := newKeyTable(site, models)
	next.internal = kt.internal
	return next
}

// newKeyTable makes the table of a site-wide set and the models' sets,
// which it keeps (do not change them after).
func newKeyTable(site keySet, models map[string]keySet) *keyTable {
	kt := &keyTable{site: site, models: models}
	kt.all = keySet{required: site.required, hashes: site.hashes[:len(site.hashes):len(site.hashes)]}
	for _, s := range models {
		kt.all.required = kt.all.required || s.required
		kt.all.hashes = append(kt.all.hashes, s.hashes...)
	}
	return kt
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

// setKeyTable replaces every key set at once: a request sees the table
// before or the table after, never a mix, which is why a rotation (old and
// new keys, then only the new) never refuses a key valid on both sides.
func (r *Router) setKeyTable(kt *keyTable) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.table.Load()
	kt.internal = old.keys.internal
	r.table.Store(&table{routes: old.routes, keys: kt})
}

// InternalKey is the router's own API key: random, made when the router
// is, never stored or logged, valid for every model whatever keys are set.
// The agent gives it to the workloads it hosts in its own process, so
// keying a model never cuts them off.
func (r *Router) InternalKey() string { return r.internalKey }

// keysFile is keys.json: the sha256 of every API key, hex-encoded, so that
// a restart keeps protecting the models it protected. A random API key
// cannot be recovered from its hash; the file is written 0600 all the same.
type keysFile struct {
	Site   []string            `json:"site,omitempty"`
	Models map[string][]string `json:"models,omitempty"`
	// Desired are the hashes the site's desired state carried last
	// (Agent.SetDesiredKeys), kept so that a site restarted offline keeps
	// asking for them.
	Desired *modelfleet.APIKeys `json:"desired,omitempty"`
	// DesiredSignedAt is when the control plane signed Desired (zero:
	// unsigned): a site with pinned release keys takes no older set.
	DesiredSignedAt time.Time `json:"desiredSignedAt,omitzero"`
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
