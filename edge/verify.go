package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/modelfleet/modelfleet"
)

// A site that pinned release keys (SetTrust, Config.Trust) loads a version
// only if a key it trusts signed a release statement for exactly that
// artifact as that version of that model (modelfleet.Trust.VerifyRelease).
// The statement is kept beside the artifact, in its metadata (<hex
// digest>.json; an older agent's <hex digest>.statement.json is still
// read), and verified again when the site starts: a file changed on disk is
// refused, and the versions that still verify serve.

// DefaultMaxModelBytes bounds a model file the agent reads into memory to
// parse: a larger one is refused before it is read, so one artifact cannot
// exhaust a small edge pod (Config.MaxModelBytes).
const DefaultMaxModelBytes = 64 << 20

// maxStatementFile bounds a statement file (an older agent's) read back
// from disk.
const maxStatementFile = 64 << 10

// ErrRefused is wrapped by Apply when a version has no valid release
// statement: the site keeps serving what it served.
var ErrRefused = errors.New("refused")

func statementPath(artifact string) string {
	return strings.TrimSuffix(artifact, ".model") + ".statement.json"
}

// SetTrust sets the keys release statements are verified with from now on
// (nil: versions load unsigned, as before releases were signed). The agent
// keeps a copy: a change to t after the call is not a change of its trust,
// and each call is a new trust for the statements it verified
// (verifiedMemo).
func (a *Agent) SetTrust(t *modelfleet.Trust) { a.trust.Store(cloneTrust(t)) }

func cloneTrust(t *modelfleet.Trust) *modelfleet.Trust {
	if t == nil {
		return nil
	}
	c := *t
	c.Keys = slices.Clone(t.Keys)
	for i := range c.Keys {
		c.Keys[i].PublicKey = slices.Clone(c.Keys[i].PublicKey)
	}
	c.Revoked = slices.Clone(t.Revoked)
	return &c
}

// Trust is what the agent verifies release statements with (nil: nothing).
func (a *Agent) Trust() *modelfleet.Trust { return a.trust.Load() }

// Refused says, by model, why versions state.json lists were not served
// when the agent started (a statement that no longer verifies, a file
// changed on disk), so the agent reports it.
func (a *Agent) Refused() map[string]string {
	a.refusedMu.Lock()
	defer a.refusedMu.Unlock()
	out := make(map[string]string, len(a.refused))
	for k, v := range a.refused {
		out[k] = v
	}
	return out
}

func (a *Agent) refuse(model, reason string) {
	a.refusedMu.Lock()
	defer a.refusedMu.Unlock()
	if a.refused == nil {
		a.refused = map[string]string{}
	}
	a.refused[model] = reason
}

// SetGrandfathered sets the artifact digests a site ran before it pinned
// release keys: they load without a statement (a fleet upgraded to signed
// releases keeps serving, and rolling back to, what it ran). Nothing else
// does.
func (a *Agent) SetGrandfathered(digests []string) {
	d := slices.Clone(digests)
	a.grandfathered.Store(&d)
}

func (a *Agent) isGrandfathered(digest string) bool {
	d := a.grandfathered.Load()
	return d != nil && slices.Contains(*d, digest)
}

// verifyDesired checks the release statements of a split before anything
// of it is installed, and returns the signed size of each version (by
// index; 0 with no trust set).
func (a *Agent) verifyDesired(model string, versions []modelfleet.DesiredVersion) ([]int64, error) {
	sizes := make([]int64, len(versions))
	t := a.trust.Load()
	if t == nil {
		return sizes, nil
	}
	for i, v := range versions {
		if v.Statement == nil && a.isGrandfathered(v.Digest) {
			continue
		}
		st, err := a.verifyRelease(t, model, v)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrRefused, err)
		}
		sizes[i] = st.Subject[0].Annotations.Size
	}
	return sizes, nil
}

// verifyRelease is t.VerifyRelease(v.Statement, model, v), the signature
// checked once per statement and trust (verifiedMemo).
func (a *Agent) verifyRelease(t *modelfleet.Trust, model string, v modelfleet.DesiredVersion) (modelfleet.Statement, error) {
	if v.Statement == nil {
		return t.VerifyRelease(nil, model, v)
	}
	sum := v.Statement.Digest()
	if st, ok := a.verified.get(t, sum); ok {
		return st, st.Matches(model, v)
	}
	st, err := t.VerifyRelease(v.Statement, model, v)
	if err == nil {
		a.verified.put(t, sum, st)
	}
	return st, err
}

// verifiedMemo remembers the release statements this site has verified
// under the trust it holds now. Every desired state names each version of
// a split with its statement, and a rollout sends a site its split several
// times (each step's weights, the finish, a rollback), so without it the
// site checks the same signatures again each time. An entry is the
// statement as decoded once its signature verified, found by the
// envelope's digest (modelfleet.Envelope.Digest) and only under the same
// trust: a new key set or a revocation is a new Trust, and nothing
// remembered under the old one counts. Each use still matches the
// statement against the desired version (modelfleet.Statement.Matches).
// Each agent has its own: a site relies only on what it verified itself.
type verifiedMemo struct {
	mu      sync.Mutex
	trust   *modelfleet.Trust
	entries map[[32]byte]modelfleet.Statement
}

// maxVerified bounds the memo; when full it starts again.
const maxVerified = 64

func (m *verifiedMemo) get(t *modelfleet.Trust, sum [32]byte) (modelfleet.Statement, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.trust != t {
		return modelfleet.Statement{}, false
	}
	st, ok := m.entries[sum]
	return st, ok
}

func (m *verifiedMemo) put(t *modelfleet.Trust, sum [32]byte, st modelfleet.Statement) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.trust != t || len(m.entries) >= maxVerified {
		m.trust, m.entries = t, make(map[[32]byte]modelfleet.Statement)
	}
	m.entries[sum] = st
}

// verifyOnDisk checks the statement kept beside an installed artifact
// against what state.json says of it and the file's size.
func (a *Agent) verifyOnDisk(e StateEntry) error {
	t := a.trust.Load()
	if t == nil {
		return nil
	}
	req := e.request()
	if err := req.Validate(); err != nil {
		return err
	}
	p := a.store.Path(e.ModelRef, e.Digest)
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	env, err := readStatement(p)
	if errors.Is(err, os.ErrNotExist) && a.isGrandfathered(e.Digest) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: version %s: release statement on disk: %w", ErrRefused, e.ModelRef, err)
	}
	v := modelfleet.DesiredVersion{Version: e.Version, Digest: e.Digest, Format: e.Format, Features: e.Features, Size: fi.Size(), Server: e.Server}
	if _, err := t.VerifyRelease(env, e.Name, v); err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	a.store.keptStatement(p, env)
	return nil
}

// readStatement reads the release statement kept beside the artifact at
// path: in its metadata, or in the file of its own an older agent wrote
// (statementPath). Neither is an error wrapping os.ErrNotExist.
func readStatement(path string) (*modelfleet.Envelope, error) {
	m, err := readMeta(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if m.Statement != nil {
		return m.Statement, nil
	}
	b, err := readBounded(statementPath(path), maxStatementFile)
	if err != nil {
		return nil, err
	}
	var env modelfleet.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, err
	}
	return &env, nil
}

// sizedWriter stops a download at the signed size: a longer artifact is
// cut off there, not written to the disk until it fills.
type sizedWriter struct {
	w    io.Writer
	left int64
	n    int64
	err  error // what running past left is (errTooLong by default)
}

// errTooLong is wrapped when an artifact runs past its signed size;
// errTooLarge when one with no signed size runs past the model budget.
var (
	errTooLong  = errors.New("artifact is longer than its signed size")
	errTooLarge = errors.New("artifact is larger than this site's model budget")
)

func (s *sizedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > s.left {
		err := s.err
		if err == nil {
			err = errTooLong
		}
		return 0, fmt.Errorf("%w (%d bytes): download stopped", err, s.n+s.left)
	}
	n, err := s.w.Write(p)
	s.left -= int64(n)
	s.n += int64(n)
	return n, err
}

// capped bounds a fetch with no signed size by the model budget: a file
// larger could not be loaded anyway, and must not fill the disk first.
func (a *Agent) capped(fetch FetchFunc) FetchFunc {
	if fetch == nil {
		return nil
	}
	return func(ctx context.Context, w io.Writer) error {
		return fetch(ctx, &sizedWriter{w: w, left: a.maxModel, err: errTooLarge})
	}
}
