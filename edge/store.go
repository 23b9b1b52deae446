package edge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
)

// DefaultKeepVersions is how many versions of one model the store keeps on
// disk: the served one plus recent ones to roll back to without a download.
const DefaultKeepVersions = 3

// ErrDigestMismatch is wrapped by Install when the downloaded artifact is not
// the one the request names. Retrying the same download will not help.
var ErrDigestMismatch = errors.New("digest mismatch")

const (
	stateFile = "state.json"
	modelsDir = "models"
	tmpPrefix = ".tmp-"
)

// Store is a site's on-disk model store:
//
//	<dir>/state.json                                  what the site serves (last good) and each version's traffic weight
//	<dir>/keys.json                                   sha256 of the API keys (see Agent.SetKeys)
//	<dir>/models/<name>/<version>/<hex digest>.model  artifacts, verified
//	<dir>/models/<name>/<version>/<hex digest>.json   format and features of the artifact beside it
//
// Every write is a temp file, fsync, rename, fsync of the directory, so a crash
// leaves either the old or the new file, never a torn one. One process owns a
// directory at a time.
type Store struct {
	dir  string
	keep int
	log  *slog.Logger

	mu    sync.Mutex // guards state and serialises writes of state.json
	state State

	installs sync.Map // model name -> *sync.Mutex, serialises Install + prune per model

	// statements holds, by artifact path, the digest
	// (modelfleet.Envelope.Digest) of the release statement this process
	// last kept beside it (artifactMeta.Statement) or verified from there:
	// whether a desired state's statement is the one kept is then known
	// without reading the file and encoding the statement again. A file
	// changed behind the agent's back is found at its next start
	// (verifyOnDisk).
	statements sync.Map
}

// keepsStatement reports whether the statement kept beside the artifact at
// path is env, as this store last kept or verified it, or, before it has,
// as the files read.
func (s *Store) keepsStatement(path string, env *modelfleet.Envelope) bool {
	if env == nil {
		return true
	}
	if d, ok := s.statements.Load(path); ok {
		return d.([32]byte) == env.Digest()
	}
	kept, err := readStatement(path)
	return err == nil && kept.Digest() == env.Digest()
}

// keptStatement records that the statement kept beside the artifact at
// path is env (nil: none is known).
func (s *Store) keptStatement(path string, env *modelfleet.Envelope) {
	if env == nil {
		s.statements.Delete(path)
		return
	}
	s.statements.Store(path, env.Digest())
}

// State is the content of state.json.
type State struct {
	Models []StateEntry `json:"models"`
	// Previous holds, by model, the versions the last change of the model
	// replaced: what the site falls back to when none of the model's
	// current versions verifies or loads at start (a file changed on disk).
	Previous map[string][]StateEntry `json:"previous,omitempty"`
}

// StateEntry is one loaded model version as last deployed successfully. A
// model has one entry per loaded version.
type StateEntry struct {
	modelfleet.ModelRef
	Digest   string   `json:"digest"`
	Format   string   `json:"format"`
	Features []string `json:"features"`
	// Path is relative to the site directory, for people reading the file.
	// The agent always reads the path derived from name, version and digest,
	// so a hand-edited state.json cannot point it outside the store.
	Path     string    `json:"path"`
	LoadedAt time.Time `json:"loadedAt"`
	// Weight is the version's percentage of its model's traffic. Files
	// written before traffic splitting have none: their single entry per
	// model took all the traffic, which is what nil means.
	Weight *int `json:"weight,omitempty"`
	// Shadow versions get a mirrored copy of the traffic (Weight is 0).
	Shadow bool `json:"shadow,omitempty"`
	// Server is the external model server of a FormatOIP version.
	Server *modelfleet.ModelServer `json:"server,omitempty"`
}

func (e *StateEntry) weight() int {
	if e.Weight == nil {
		return 100
	}
	return *e.Weight
}

func (e *StateEntry) request() DeployRequest {
	return DeployRequest{Model: e.ModelRef, Digest: e.Digest, Format: e.Format, Features: e.Features, Server: e.Server}
}

// OpenStore opens (creating if needed) the store in dir and reads state.json.
// keep <= 0 means DefaultKeepVersions. An unreadable state.json is an error:
// starting empty would make the next deploy forget every other model.
func OpenStore(dir string, keep int, logger *slog.Logger) (*Store, error) {
	if keep <= 0 {
		keep = DefaultKeepVersions
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{dir: dir, keep: keep, log: logger}
	if err := os.MkdirAll(filepath.Join(dir, modelsDir), 0o755); err != nil {
		return nil, fmt.Errorf("edge: open store %q: %w", dir, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("edge: open store %q: %w", dir, err)
	default:
		if err := json.Unmarshal(b, &s.state); err != nil {
			return nil, fmt.Errorf("edge: open store %q: parse %s: %w", dir, stateFile, err)
		}
		// Put keeps the list sorted by name; a hand-edited file may not be.
		slices.SortStableFunc(s.state.Models, func(a, b StateEntry) int { return strings.Compare(a.Name, b.Name) })
	}
	s.removeTemps()
	return s, nil
}

// Dir is the site directory.
func (s *Store) Dir() string { return s.dir }

// Path is where the artifact of ref with the given digest lives. The caller
// must have validated ref and digest.
func (s *Store) Path(ref modelfleet.ModelRef, digest string) string {
	return filepath.Join(s.dir, filepath.FromSlash(relPath(ref, digest)))
}

func relPath(ref modelfleet.ModelRef, digest string) string {
	return path.Join(modelsDir, ref.Name, ref.Version, strings.TrimPrefix(digest, "sha256:")+".model")
}

// State returns a copy of what state.json says the site serves.
func (s *Store) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := make(map[string][]StateEntry, len(s.state.Previous))
	for k, v := range s.state.Previous {
		prev[k] = slices.Clone(v)
	}
	return State{Models: slices.Clone(s.state.Models), Previous: prev}
}

// Put records e as the only loaded version of its model, with all the
// traffic, and persists state.json. On error the previous state stays, on
// disk and in memory.
func (s *Store) Put(e StateEntry) error { return s.PutModel(e.Name, []StateEntry{e}) }

// PutModel records entries as the loaded versions of the model name,
// replacing what was recorded for it, and persists state.json; no entries
// forget the model. Their weights must add up to 100. On error the previous
// state stays, on disk and in memory.
func (s *Store) PutModel(name string, entries []StateEntry) error {
	entries = slices.Clone(entries)
	for i := range entries {
		e := &entries[i]
		e.Path = relPath(e.ModelRef, e.Digest)
		w := e.weight()
		e.Weight = &w
	}
	slices.SortFunc(entries, func(a, b StateEntry) int { return strings.Compare(a.Version, b.Version) })
	if err := checkEntries(name, entries); err != nil {
		return fmt.Errorf("edge: save state: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make([]StateEntry, 0, len(s.state.Models)+len(entries))
	for _, e := range s.state.Models {
		if e.Name != name {
			next = append(next, e)
		}
	}
	i, _ := slices.BinarySearchFunc(next, name, func(x StateEntry, name string) int { return strings.Compare(x.Name, name) })
	next = slices.Insert(next, i, entries...)
	prev := s.state.Previous
	if old := s.entriesLocked(name); len(old) > 0 && !sameVersions(old, entries) {
		prev = maps.Clone(prev)
		if prev == nil {
			prev = map[string][]StateEntry{}
		}
		prev[name] = old
	}
	b, err := json.MarshalIndent(State{Models: next, Previous: prev}, "", "  ")
	if err != nil {
		return fmt.Errorf("edge: save state: %w", err)
	}
	if err := WriteFileAtomic(filepath.Join(s.dir, stateFile), b); err != nil {
		return fmt.Errorf("edge: save state: %w", err)
	}
	s.state.Models, s.state.Previous = next, prev
	return nil
}

// checkEntries checks the versions of one model before they are recorded;
// entries are sorted by version.
func checkEntries(name string, entries []StateEntry) error {
	if err := modelfleet.ValidateName("model name", name); err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	ws := make([]weighted, len(entries))
	for i, e := range entries {
		req := e.request()
		if err := req.Validate(); err != nil {
			return err
		}
		ws[i] = weighted{e.ModelRef, e.weight(), e.Shadow}
	}
	return checkWeights(name, ws)
}

// entries returns the recorded versions of the named model.
func (s *Store) entries(name string) []StateEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entriesLocked(name)
}

// sameVersions reports whether two recorded splits hold the same versions
// (by version and digest; weights aside).
func sameVersions(a, b []StateEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Version != b[i].Version || a[i].Digest != b[i].Digest {
			return false
		}
	}
	return true
}

func (s *Store) entriesLocked(name string) []StateEntry {
	var out []StateEntry
	for _, e := range s.state.Models {
		if e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// Install makes the artifact of req present and verified on disk and returns
// its path. If a file with the right content is already there (an earlier
// install, or a version kept for rollback) nothing is fetched; fetch may then
// be nil. Otherwise fetch writes into a temp file whose sha256 must equal
// req.Digest before it is renamed into place; on any error nothing changes.
// After a download, older versions of the model beyond the store's limit are
// pruned.
func (s *Store) Install(ctx context.Context, req DeployRequest, fetch FetchFunc) (string, error) {
	if err := req.Validate(); err != nil {
		return "", fmt.Errorf("edge: install: %w", err)
	}
	mu, _ := s.installs.LoadOrStore(req.Model.Name, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()

	dst := s.Path(req.Model, req.Digest)
	ok, err := hasDigest(dst, req.Digest)
	if err != nil {
		return "", fmt.Errorf("edge: install %s: %w", req.Model, err)
	}
	if ok {
		// Touch it: pruning goes by modification time, and a version just
		// asked for again is not the oldest.
		now := time.Now()
		_ = os.Chtimes(dst, now, now)
		if err := writeMeta(dst, &req); err != nil {
			return "", fmt.Errorf("edge: install %s: %w", req.Model, err)
		}
		s.keptStatement(dst, req.Statement)
	} else if err := s.download(ctx, req, fetch, dst); err != nil {
		return "", fmt.Errorf("edge: install %s: %w", req.Model, err)
	}
	if !ok {
		// Only a download adds an artifact: without one the store holds
		// the files the last prune left (a site applies every revision,
		// each listing versions already on disk, and a rollback restores
		// one at every site at once).
		s.prune(req.Model.Name, dst)
	}
	return dst, nil
}

func (s *Store) download(ctx context.Context, req DeployRequest, fetch FetchFunc, dst string) error {
	if fetch == nil {
		return fmt.Errorf("artifact %q is not on disk and there is nothing to fetch it with", req.Digest)
	}
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		f.Close()
		if tmp != "" {
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	var w io.Writer = io.MultiWriter(f, h)
	sized := &sizedWriter{w: w, left: req.Size}
	if req.Size > 0 {
		w = sized
	}
	if err := fetch(ctx, w); err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	if req.Size > 0 && sized.n != req.Size {
		return fmt.Errorf("%w: downloaded %d bytes, the signed size is %d", ErrDigestMismatch, sized.n, req.Size)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != req.Digest {
		return fmt.Errorf("%w: downloaded artifact is %q, want %q", ErrDigestMismatch, got, req.Digest)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// The files kept beside the artifact (its metadata, its release
	// statement) go in first, each synced: the artifact is never on disk
	// without them, and the directory syncs below make their renames
	// durable with its own, one sync of the directory for all three.
	if err := writeBeside(dst, &req); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	tmp = ""
	s.keptStatement(dst, req.Statement)
	// The version directory may be new: sync it and its parents so that the
	// rename survives a power cut, not only the file's content.
	for d, i := dir, 0; i < 3; d, i = filepath.Dir(d), i+1 {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// writeBeside writes the metadata of the artifact about to be renamed to
// dst, its release statement (if any) among it, without syncing the
// directory: download syncs it after the artifact's rename.
func writeBeside(dst string, req *DeployRequest) error {
	b, err := metaJSON(req)
	if err != nil {
		return err
	}
	return replaceFile(metaPath(dst), b)
}

// prune removes the oldest artifacts of a model so that at most s.keep remain,
// never the one just installed nor those state.json lists. Failures are
// logged: a full disk of old versions must not fail a deploy.
func (s *Store) prune(name, installed string) {
	type artifact struct {
		path string
		mod  time.Time
	}
	keep := map[string]bool{installed: true}
	for _, e := range s.entries(name) {
		keep[s.Path(e.ModelRef, e.Digest)] = true
	}
	// And what the site falls back to at start.
	s.mu.Lock()
	prev := slices.Clone(s.state.Previous[name])
	s.mu.Unlock()
	for _, e := range prev {
		if e.Validate() == nil && modelfleet.ValidDigest(e.Digest) {
			keep[s.Path(e.ModelRef, e.Digest)] = true
		}
	}
	modelDir := filepath.Join(s.dir, modelsDir, name)
	files, _ := filepath.Glob(filepath.Join(modelDir, "*", "*.model"))
	var old []artifact
	for _, p := range files {
		if keep[p] {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		old = append(old, artifact{p, fi.ModTime()})
	}
	room := s.keep - len(keep)
	if len(old) <= room {
		return
	}
	slices.SortFunc(old, func(a, b artifact) int { return b.mod.Compare(a.mod) })
	for _, a := range old[max(room, 0):] {
		if err := os.Remove(a.path); err != nil {
			s.log.Warn("edge: prune old model version", "model", name, "path", a.path, "err", err)
			continue
		}
		os.Remove(metaPath(a.path))
		os.Remove(statementPath(a.path)) // an older agent's
		s.keptStatement(a.path, nil)
		s.log.Info("edge: pruned old model version", "model", name, "path", a.path)
		os.Remove(filepath.Dir(a.path)) // only succeeds when the version dir is now empty
	}
}

// removeTemps deletes temp files left by a crash mid-download.
func (s *Store) removeTemps() {
	tmps, _ := filepath.Glob(filepath.Join(s.dir, modelsDir, "*", "*", tmpPrefix+"*"))
	more, _ := filepath.Glob(filepath.Join(s.dir, tmpPrefix+"*"))
	for _, p := range append(tmps, more...) {
		os.Remove(p)
	}
}
