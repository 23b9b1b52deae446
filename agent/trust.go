package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/edge"
)

// The release keys a site verifies release statements with
// (modelfleet.Trust) live in <data dir>/identity/release-keys.json: pinned
// at enrolment, replaced at renewal (over mTLS, from the gateway the site
// enrolled with), and updated from the signed key set every desired state
// carries, which a site takes only if a key it already trusts signed it.
// Config.ReleaseKeysFile pins them by hand instead (a site fed from a
// mounted desired-state file).

// DefaultDownloadTimeout bounds one artifact download.
const DefaultDownloadTimeout = 10 * time.Minute

const releaseKeysFile = "release-keys.json"

// maxTrustFile bounds a release keys file read back.
const maxTrustFile = 256 << 10

func trustPath(dataDir string) string { return filepath.Join(identityDir(dataDir), releaseKeysFile) }

// LoadTrust reads a release keys file (nil if there is none).
func LoadTrust(p string) (*modelfleet.Trust, error) {
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTrustFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxTrustFile {
		return nil, fmt.Errorf("release keys %s: larger than %d bytes", p, maxTrustFile)
	}
	return parseTrust(b, p)
}

// parseTrust decodes a release keys file; name says where it came from in
// errors.
func parseTrust(b []byte, name string) (*modelfleet.Trust, error) {
	var t modelfleet.Trust
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("release keys %s: %w", name, err)
	}
	if len(t.Keys) == 0 {
		return nil, fmt.Errorf("release keys %s: no keys", name)
	}
	return &t, nil
}

func saveTrust(p string, t *modelfleet.Trust) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return edge.WriteFileAtomic(p, b)
}

// pinned merges what the gateway gave at enrolment or renewal into what
// the site trusted: the gateway's keys, and every revocation either knows.
func pinned(old, got *modelfleet.Trust) *modelfleet.Trust {
	if got == nil || len(got.Keys) == 0 {
		return old
	}
	t := *got
	t.Revoked = slices.Clone(got.Revoked)
	if old != nil {
		for _, id := range old.Revoked {
			if !slices.Contains(t.Revoked, id) {
				t.Revoked = append(t.Revoked, id)
			}
		}
		t.Serial = max(t.Serial, old.Serial)
	}
	return &t
}

// trustPathOf is where this site keeps its release keys.
func (s *Site) trustPathOf() string {
	if s.cfg.ReleaseKeysFile != "" {
		return s.cfg.ReleaseKeysFile
	}
	return trustPath(s.cfg.DataDir)
}

// pin applies the keys the gateway gave at enrolment or renewal, which
// the identity stored (Identity.store) merged with what the site knew.
func (s *Site) pin(got *modelfleet.Trust) {
	if s.cfg.ReleaseKeysFile != "" || got == nil {
		return // pinned by hand, or nothing given
	}
	t, err := LoadTrust(s.trustPathOf())
	if err != nil || t == nil {
		s.log.Error("release keys unreadable", "error", err)
		return
	}
	if s.Edge.Trust() == nil {
		// The first keys: what the site serves now keeps loading.
		var ds []string
		for _, m := range s.Edge.Served() {
			ds = append(ds, m.Digest)
		}
		grand, err := grandfather(s.cfg.DataDir, ds)
		if err != nil {
			s.log.Error("release keys not pinned: record what runs", "error", err)
			return
		}
		s.Edge.SetGrandfathered(grand)
	}
	s.Edge.SetTrust(t)
	s.log.Info("release keys pinned", "keys", len(t.Keys), "revoked", len(t.Revoked))
}

// learnKeys takes the signed key set a desired state carries, if a key the
// site trusts signed it and it is newer than what the site has.
func (s *Site) learnKeys(env *modelfleet.Envelope) {
	cur := s.Edge.Trust()
	if env == nil || cur == nil {
		return
	}
	// The same set comes with every poll: check (and log) each once per
	// trust the site holds (a renewal may pin keys that take it). The
	// HTTP source hands over the same envelope while the set is unchanged,
	// so that is a pointer comparison; another source's set is compared
	// by its tag.
	if cur == s.lastKeyTrust && env == s.lastKeyEnv {
		return
	}
	tag := env.Tag()
	if cur == s.lastKeyTrust && tag == s.lastKeyTag {
		s.lastKeyEnv = env
		return
	}
	s.lastKeyTrust, s.lastKeyEnv, s.lastKeyTag = cur, env, tag
	next, ok, err := cur.Update(env)
	if err != nil {
		s.log.Warn("release key set refused", "error", err)
		return
	}
	if !ok {
		return
	}
	if s.cfg.ReleaseKeysFile == "" {
		if err := saveTrust(s.trustPathOf(), &next); err != nil {
			s.log.Error("release keys not stored", "error", err)
			return
		}
	}
	s.Edge.SetTrust(&next)
	s.log.Info("release keys updated", "serial", next.Serial, "keys", len(next.Keys), "revoked", len(next.Revoked))
}

// fetchArtifact downloads one version's artifact: only from the allowed
// hosts, within the download timeout, and no more than its size.
func (s *Site) fetchArtifact(dl artifactClient, v modelfleet.DesiredVersion) edge.FetchFunc {
	return func(ctx context.Context, w io.Writer) error {
		ctx, cancel := context.WithTimeout(ctx, s.downloadTimeout())
		defer cancel()
		_, err := dl.DownloadSized(ctx, v.ArtifactURL, v.Digest, v.Size, w)
		return err
	}
}

type artifactClient interface {
	DownloadSized(ctx context.Context, rawURL, digest string, size int64, w io.Writer) (int64, error)
}

func (s *Site) downloadTimeout() time.Duration {
	if s.cfg.DownloadTimeout > 0 {
		return s.cfg.DownloadTimeout
	}
	return DefaultDownloadTimeout
}

// grandfatheredFile lists, in the site's data dir, the artifact digests the
// site ran when it first pinned release keys: they load without a
// statement, so a fleet upgraded to signed releases keeps serving (and can
// roll back to) what it ran. Written once; nothing is added later.
const grandfatheredFile = "release-grandfathered.json"

func loadGrandfathered(p string) ([]string, bool, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var ds []string
	if err := json.Unmarshal(b, &ds); err != nil {
		return nil, true, fmt.Errorf("%s: %w", p, err)
	}
	return ds, true, nil
}

// grandfather records digests as what ran before keys were pinned, unless
// a list was recorded before.
func grandfather(dataDir string, digests []string) ([]string, error) {
	p := filepath.Join(dataDir, grandfatheredFile)
	if old, exists, err := loadGrandfathered(p); exists || err != nil {
		return old, err
	}
	slices.Sort(digests)
	digests = slices.Compact(digests)
	b, err := json.Marshal(append([]string{}, digests...))
	if err != nil {
		return nil, err
	}
	return digests, edge.WriteFileAtomic(p, b)
}

// grandfatherState records the digests state.json lists (current and
// previous versions), once.
func grandfatherState(dataDir string) ([]string, error) {
	st, err := edge.OpenStore(dataDir, 0, nil)
	if err != nil {
		return nil, err
	}
	var ds []string
	for _, e := range st.State().Models {
		ds = append(ds, e.Digest)
	}
	for _, es := range st.State().Previous {
		for _, e := range es {
			ds = append(ds, e.Digest)
		}
	}
	return grandfather(dataDir, ds)
}
