package modelfleet

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
)

// Bounds of router API key configuration, wherever it comes from (desired
// state, the gateway's API, a mounted keys file): enough for a rotation
// (old and new) of a few clients per scope, and a hash per model of a
// large site.
const (
	// MaxAPIKeysPerScope bounds the keys (or hashes) of one scope: the
	// site-wide set or one model's.
	MaxAPIKeysPerScope = 16
	// MaxAPIKeyModels bounds the models with keys of their own at a site.
	MaxAPIKeyModels = 256
	// MinAPIKeyLen and MaxAPIKeyLen bound a key itself. The minimum is why
	// a hash may be shown to anyone who reads a site's desired state: a
	// random key of 16 or more characters cannot be found from its sha256.
	MinAPIKeyLen = 16
	MaxAPIKeyLen = 1024
)

// APIKeys are the hashes of the API keys a site's inference router accepts:
// a request for a model is let in by a site-wide key or one of that model's.
type APIKeys struct {
	// SHA256 are the site-wide keys' hashes (hex): they open every model.
	SHA256 []string `json:"sha256,omitempty"`
	// Models are per-model keys' hashes, by model name.
	Models map[string]KeyHashes `json:"models,omitempty"`
}

// KeyHashes are the sha256 hashes (lowercase hex) of one scope's keys.
type KeyHashes struct {
	SHA256 []string `json:"sha256"`
}

// Validate checks bounds and that every hash is a hex sha256. A present
// model scope must hold at least one hash: "no keys" is said by removing
// the scope.
func (k *APIKeys) Validate() error {
	if k == nil {
		return nil
	}
	if err := ValidateKeyHashes("site-wide", k.SHA256); err != nil {
		return err
	}
	if len(k.Models) > MaxAPIKeyModels {
		return Errorf(EINVALID, "api keys are set for %d models, at most %d", len(k.Models), MaxAPIKeyModels)
	}
	for m, h := range k.Models {
		if err := ValidateName("model name", m); err != nil {
			return err
		}
		if len(h.SHA256) == 0 {
			return Errorf(EINVALID, "api keys of model %q: no hashes (remove the model instead)", m)
		}
		if err := ValidateKeyHashes("model "+m, h.SHA256); err != nil {
			return err
		}
	}
	return nil
}

// Empty reports whether k sets no keys at all.
func (k *APIKeys) Empty() bool { return k == nil || (len(k.SHA256) == 0 && len(k.Models) == 0) }

// Clone returns a deep copy.
func (k *APIKeys) Clone() *APIKeys {
	if k == nil {
		return nil
	}
	c := &APIKeys{SHA256: slices.Clone(k.SHA256)}
	if k.Models != nil {
		c.Models = make(map[string]KeyHashes, len(k.Models))
		for m, h := range k.Models {
			c.Models[m] = KeyHashes{SHA256: slices.Clone(h.SHA256)}
		}
	}
	return c
}

// ValidateKeyHashes checks one scope's hashes: at most MaxAPIKeysPerScope,
// each 64 lowercase hex digits, none twice.
func ValidateKeyHashes(scope string, hashes []string) error {
	if len(hashes) > MaxAPIKeysPerScope {
		return Errorf(EINVALID, "%s api keys: %d hashes, at most %d", scope, len(hashes), MaxAPIKeysPerScope)
	}
	for i, h := range hashes {
		if !ValidKeyHash(h) {
			if len(h) > 80 {
				h = h[:80] + "…"
			}
			return Errorf(EINVALID, "%s api key hash %d %q is not a sha256 in lowercase hex (64 digits)", scope, i, h)
		}
		if slices.Contains(hashes[:i], h) {
			return Errorf(EINVALID, "%s api key hash %d appears twice", scope, i)
		}
	}
	return nil
}

// ValidKeyHash reports whether s is a sha256 in lowercase hex.
func ValidKeyHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ValidateAPIKey checks a key before it is hashed: MinAPIKeyLen to
// MaxAPIKeyLen printable ASCII characters without spaces, as a bearer
// token carries it (RFC 6750's b64token is stricter; any visible ASCII
// character is accepted).
func ValidateAPIKey(key string) error {
	if len(key) < MinAPIKeyLen || len(key) > MaxAPIKeyLen {
		return Errorf(EINVALID, "an api key must be %d to %d characters, this one has %d (make one with: openssl rand -hex 24)", MinAPIKeyLen, MaxAPIKeyLen, len(key))
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c > '~' {
			return Errorf(EINVALID, "an api key may hold only visible ASCII characters; character %d is not", i)
		}
	}
	return nil
}

// HashAPIKey is the hash of key as it travels and is stored: sha256,
// lowercase hex.
func HashAPIKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// Bounds of an APIKeysRequest.
const (
	MaxAPIKeysRequestSites = 10000
	MaxSelectorLabels      = 16
	MaxAPIKeysRequestBody  = 1 << 20
)

// APIKeysRequest is PUT /api/apikeys's body: the hashes of one scope's
// keys — a model's, or site-wide with no Model — at the sites listed, the
// sites a label selector selects, or all sites. No hashes remove the scope
// from those sites' desired state. Keys are hashed by the caller (the CLI
// does it): a key never reaches the control plane.
type APIKeysRequest struct {
	Sites    []string          `json:"sites,omitempty"`
	Selector map[string]string `json:"selector,omitempty"`
	All      bool              `json:"all,omitempty"`
	Model    string            `json:"model,omitempty"`
	SHA256   []string          `json:"sha256"`
}

// APIKeysResult says which sites a PUT /api/apikeys addressed, and at how
// many their desired state changed (each of those converges on it).
type APIKeysResult struct {
	Sites     []string `json:"sites"`
	Changed   int      `json:"changed"`
	Unchanged int      `json:"unchanged"`
}

// Validate checks the request's bounds and that it addresses sites one
// way only.
func (r *APIKeysRequest) Validate() error {
	ways := 0
	for _, b := range []bool{len(r.Sites) > 0, len(r.Selector) > 0, r.All} {
		if b {
			ways++
		}
	}
	if ways != 1 {
		return Errorf(EINVALID, "say which sites: sites, selector or all (exactly one)")
	}
	if len(r.Sites) > MaxAPIKeysRequestSites {
		return Errorf(EINVALID, "%d sites, at most %d at once", len(r.Sites), MaxAPIKeysRequestSites)
	}
	seen := make(map[string]bool, len(r.Sites))
	for _, s := range r.Sites {
		if err := ValidateName("site id", s); err != nil {
			return err
		}
		if seen[s] {
			return Errorf(EINVALID, "site %q is listed twice", s)
		}
		seen[s] = true
	}
	if len(r.Selector) > MaxSelectorLabels {
		return Errorf(EINVALID, "selector has %d labels, at most %d", len(r.Selector), MaxSelectorLabels)
	}
	for k, v := range r.Selector {
		if k == "" || len(k) > 253 || len(v) > 255 {
			return Errorf(EINVALID, "selector label %.40q=%.40q: a key of 1 to 253 characters, a value of at most 255", k, v)
		}
	}
	if r.Model != "" {
		if err := ValidateName("model name", r.Model); err != nil {
			return err
		}
	}
	scope := "site-wide"
	if r.Model != "" {
		scope = "model " + r.Model
	}
	return ValidateKeyHashes(scope, r.SHA256)
}

// With returns a copy of k with the scope of model ("" site-wide) set to
// hashes, or removed with none; nil when nothing is left.
func (k *APIKeys) With(model string, hashes []string) *APIKeys {
	next := k.Clone()
	if next == nil {
		next = &APIKeys{}
	}
	hashes = slices.Clone(hashes)
	if len(hashes) == 0 {
		hashes = nil
	}
	switch {
	case model == "":
		next.SHA256 = hashes
	case hashes == nil:
		delete(next.Models, model)
	default:
		if next.Models == nil {
			next.Models = map[string]KeyHashes{}
		}
		next.Models[model] = KeyHashes{SHA256: hashes}
	}
	if len(next.Models) == 0 {
		next.Models = nil
	}
	if next.Empty() {
		return nil
	}
	return next
}
