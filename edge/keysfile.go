package edge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/modelfleet/modelfleet"
)

// The router API keys file (`modelfleet edge --api-keys-file`), typically a
// Kubernetes Secret mounted into the agent's pod:
//
//	apiVersion: modelfleet.dev/v1
//	kind: RouterAPIKeys
//	site:                        # site-wide: open every model
//	  keys: [<key>, ...]         # the keys themselves, or
//	  sha256: [<hex>, ...]       # their hashes (modelfleet site api-keys hash)
//	models:
//	  bearing-failure:
//	    sha256: [<hex>]
//
// JSON is YAML, so the same document in JSON parses too. Parsing is strict:
// unknown fields, duplicate keys and anything over the bounds in
// router_keys.go refuse the whole file.
const (
	KeysFileAPIVersion = "modelfleet.dev/v1"
	KeysFileKind       = "RouterAPIKeys"
	// MaxKeysFileBytes bounds the file read.
	MaxKeysFileBytes = 1 << 20
	// DefaultKeysFilePoll is how often WatchKeysFile reads the file.
	// Kubernetes updates a mounted Secret by swapping a symlink, which no
	// file watch sees reliably; reading a small file and comparing its
	// hash is cheap and sees every kind of update.
	DefaultKeysFilePoll = 5 * time.Second
)

// KeysFile is the document of a router API keys file.
type KeysFile struct {
	APIVersion string              `yaml:"apiVersion"`
	Kind       string              `yaml:"kind"`
	Site       *KeyScope           `yaml:"site,omitempty"`
	Models     map[string]KeyScope `yaml:"models,omitempty"`
}

// KeyScope is the keys of one scope, as keys or as their sha256 hashes
// (lowercase hex); both may be given, together at most
// modelfleet.MaxAPIKeysPerScope.
type KeyScope struct {
	Keys   []string `yaml:"keys,omitempty"`
	SHA256 []string `yaml:"sha256,omitempty"`
}

// ParseKeysFile reads and validates a keys file. An error never quotes a
// key.
func ParseKeysFile(b []byte) (KeysFile, error) {
	var f KeysFile
	if len(b) > MaxKeysFileBytes {
		return f, modelfleet.Errorf(modelfleet.ETOOLARGE, "api keys file is %d bytes, at most %d", len(b), MaxKeysFileBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if err == io.EOF {
			return f, modelfleet.Errorf(modelfleet.EINVALID, "api keys file is empty: want apiVersion %s, kind %s", KeysFileAPIVersion, KeysFileKind)
		}
		return f, modelfleet.Errorf(modelfleet.EINVALID, "api keys file: %v", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return f, modelfleet.Errorf(modelfleet.EINVALID, "api keys file holds more than one document")
	}
	if f.APIVersion != KeysFileAPIVersion || f.Kind != KeysFileKind {
		return f, modelfleet.Errorf(modelfleet.EINVALID, "api keys file: apiVersion %q, kind %q: want %s, %s", f.APIVersion, f.Kind, KeysFileAPIVersion, KeysFileKind)
	}
	if f.Site != nil {
		if err := f.Site.validate("site-wide"); err != nil {
			return f, err
		}
	}
	if len(f.Models) > modelfleet.MaxAPIKeyModels {
		return f, modelfleet.Errorf(modelfleet.EINVALID, "api keys file: keys for %d models, at most %d", len(f.Models), modelfleet.MaxAPIKeyModels)
	}
	for m, s := range f.Models {
		if err := modelfleet.ValidateName("model name", m); err != nil {
			return f, fmt.Errorf("api keys file: %w", err)
		}
		if err := s.validate("model " + m); err != nil {
			return f, err
		}
	}
	return f, nil
}

func (s *KeyScope) validate(scope string) error {
	if n := len(s.Keys) + len(s.SHA256); n == 0 || n > modelfleet.MaxAPIKeysPerScope {
		return modelfleet.Errorf(modelfleet.EINVALID, "api keys file: %s: %d keys and hashes, want 1 to %d (leave the scope out for none)", scope, n, modelfleet.MaxAPIKeysPerScope)
	}
	for i, k := range s.Keys {
		if err := modelfleet.ValidateAPIKey(k); err != nil {
			return fmt.Errorf("api keys file: %s: key %d: %w", scope, i, err)
		}
	}
	if err := modelfleet.ValidateKeyHashes("api keys file: "+scope, s.hashes()); err != nil {
		return err
	}
	return nil
}

// hashes are the scope's keys hashed, then its hashes.
func (s *KeyScope) hashes() []string {
	return append(hexHashes(s.Keys), s.SHA256...)
}

// layer is the file's keys as the configured layer over base (Config.Keys,
// site-wide). The file was validated.
func (f *KeysFile) layer(base []string) (keyLayer, error) {
	var site []string
	if f.Site != nil {
		site = f.Site.hashes()
	}
	models := make(map[string][]string, len(f.Models))
	for m, s := range f.Models {
		models[m] = s.hashes()
	}
	l, err := layerOf(site, models)
	if l.site == nil && len(base) > 0 {
		ks := newKeySet(base)
		l.site = &ks
	}
	return l, err
}

// ReloadKeysFile reads the keys file again and, if its content changed,
// makes the router ask for its keys from the next request on. A file that
// cannot be read or does not parse changes nothing: the router keeps the
// keys it has (a Secret mid-update, or a bad edit, must not open the
// router), and the error says why. It reports whether the keys changed.
func (a *Agent) ReloadKeysFile() (bool, error) {
	if a.keysPath == "" {
		return false, nil
	}
	b, err := readBounded(a.keysPath, MaxKeysFileBytes)
	if err != nil {
		return false, fmt.Errorf("edge: api keys file: %w", err)
	}
	sum := sha256.Sum256(b)
	a.keysMu.Lock()
	defer a.keysMu.Unlock()
	if a.keysSeen && sum == a.keysSum {
		return false, nil
	}
	a.keysSum, a.keysSeen = sum, true
	f, err := ParseKeysFile(b)
	if err != nil {
		return false, fmt.Errorf("edge: %s: %w; keeping the keys in force", a.keysPath, err)
	}
	l, err := f.layer(a.cfgKeys)
	if err != nil {
		return false, fmt.Errorf("edge: %s: %w; keeping the keys in force", a.keysPath, err)
	}
	a.configured = l
	a.installKeys()
	a.log.Info("edge: api keys file applied", "file", a.keysPath, "site_wide", f.Site != nil, "models", len(f.Models))
	return true, nil
}

// WatchKeysFile reads the keys file every interval (DefaultKeysFilePoll if
// not positive) until ctx is done, applying it when it changed. Without a
// keys file it returns at once.
func (a *Agent) WatchKeysFile(ctx context.Context, every time.Duration) {
	if a.keysPath == "" {
		return
	}
	if every <= 0 {
		every = DefaultKeysFilePoll
	}
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := a.ReloadKeysFile()
		switch {
		case err != nil && !failing:
			a.log.Error("edge: api keys file not applied", "err", err)
		case err == nil && failing:
			a.log.Info("edge: api keys file readable again", "file", a.keysPath)
		}
		failing = err != nil
	}
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, modelfleet.Errorf(modelfleet.ETOOLARGE, "%s is over %d bytes", path, limit)
	}
	return b, nil
}
