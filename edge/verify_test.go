package edge

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

// signer is a release key and the trust that pins it.
type signer struct {
	key   ed25519.PrivateKey
	trust *modelfleet.Trust
}

func newSigner(t testing.TB) signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := k.Public().(ed25519.PublicKey)
	return signer{k, &modelfleet.Trust{Keys: []modelfleet.TrustedKey{{ID: modelfleet.KeyID(pub), PublicKey: pub}}}}
}

// version is a desired version of artifact, signed by s as model:version.
func (s signer) version(t testing.TB, model, version string, artifact []byte, weight int) modelfleet.DesiredVersion {
	t.Helper()
	st := modelfleet.NewReleaseStatement(digestOf(artifact), int64(len(artifact)), modelfleet.ReleasePredicate{
		Model: model, Version: version, Format: modelfleet.FormatLightGBM, Features: testFeatures, Release: "release/" + model + "/" + version, SignedAt: time.Now()})
	env, err := modelfleet.SignStatement(st, []ed25519.PrivateKey{s.key})
	if err != nil {
		t.Fatal(err)
	}
	return modelfleet.DesiredVersion{Version: version, Digest: digestOf(artifact), Size: int64(len(artifact)), Format: modelfleet.FormatLightGBM,
		ArtifactURL: "https://example.invalid/" + version, Features: testFeatures, Weight: weight, Statement: env}
}

func openTrusting(t *testing.T, dir string, trust *modelfleet.Trust) *Agent {
	t.Helper()
	a, err := Open(dir, Config{SiteID: "site-1", Loader: fakeLoad, Vectorizer: fakeVector, Logger: testLogger(t), Trust: trust})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

// fetchAll serves each artifact by its desired version's URL.
func fetchAll(arts map[string][]byte) func(modelfleet.DesiredVersion) FetchFunc {
	return func(v modelfleet.DesiredVersion) FetchFunc {
		return func(_ context.Context, w io.Writer) error {
			_, err := w.Write(arts[v.Version])
			return err
		}
	}
}

func served(a *Agent, model string) string {
	var vs []string
	for _, v := range a.router.Versions(model) {
		vs = append(vs, v.Model.Version)
	}
	return strings.Join(vs, ",")
}

// Every refusal the issue names: the site keeps serving its last good
// version, and the error says why (the agent reports it).
func TestApplyRefusesWhatNoTrustedKeySigned(t *testing.T) {
	good, rogue := newSigner(t), newSigner(t)
	v1, v2 := fakeArtifact(0, 1, 1, 1), fakeArtifact(1, 2, 2, 2)
	arts := map[string][]byte{"1": v1, "2": v2}
	revoked := *good.trust
	revoked.Revoked = []string{good.trust.Keys[0].ID}

	unsigned := good.version(t, "m", "2", v2, 100)
	unsigned.Statement = nil
	otherDigest := good.version(t, "m", "2", v1, 100) // a statement for v1's bytes
	otherDigest.Digest, otherDigest.Size = digestOf(v2), int64(len(v2))
	otherModel := good.version(t, "n", "2", v2, 100)
	otherVersion := good.version(t, "m", "3", v2, 100)
	otherVersion.Version = "2"
	for name, c := range map[string]struct {
		trust *modelfleet.Trust
		v     modelfleet.DesiredVersion
		want  string
	}{
		"no statement":  {good.trust, unsigned, "no signed release statement"},
		"other digest":  {good.trust, otherDigest, "is for artifact"},
		"untrusted key": {good.trust, rogue.version(t, "m", "2", v2, 100), "not signed by a trusted key"},
		"revoked key":   {&revoked, good.version(t, "m", "2", v2, 100), "not signed by a trusted key"},
		"other model":   {good.trust, otherModel, "is for n:2"},
		"other version": {good.trust, otherVersion, "is for m:3"},
	} {
		t.Run(name, func(t *testing.T) {
			a := openTrusting(t, t.TempDir(), good.trust)
			if err := a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{good.version(t, "m", "1", v1, 100)}, fetchAll(arts)); err != nil {
				t.Fatalf("apply the good version: %v", err)
			}
			a.SetTrust(c.trust)
			err := a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{good.version(t, "m", "1", v1, 50), atWeight(c.v, 50)}, fetchAll(arts))
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("apply: %v, want refused saying %q", err, c.want)
			}
			if got := served(a, "m"); got != "1" {
				t.Fatalf("serving %q after a refused step, want the last good version 1", got)
			}
			if _, err := os.Stat(a.store.Path(modelfleet.ModelRef{Name: "m", Version: "2"}, digestOf(v2))); err == nil {
				t.Fatal("the refused artifact was downloaded")
			}
		})
	}
}

func atWeight(v modelfleet.DesiredVersion, w int) modelfleet.DesiredVersion {
	v.Weight = w
	return v
}

// The statement is kept beside the model and verified at start: a model
// file or statement changed on disk is refused, the other versions serve,
// and the reason is kept for the agent's report.
func TestTamperedFilesOnDiskAreRefusedAtStart(t *testing.T) {
	s := newSigner(t)
	v1, v2 := fakeArtifact(0, 1, 1, 1), fakeArtifact(1, 2, 2, 2)
	arts := map[string][]byte{"1": v1, "2": v2}
	for name, tamper := range map[string]func(t *testing.T, model string){
		"model file": func(t *testing.T, model string) {
			if err := os.WriteFile(model, fakeArtifact(9, 9, 9, 9), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"statement's signature": func(t *testing.T, model string) {
			b, _ := os.ReadFile(metaPath(model))
			b = []byte(strings.Replace(string(b), `"sig":"`, `"sig":"AAAA`, 1))
			if err := os.WriteFile(metaPath(model), b, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"statement removed": func(t *testing.T, model string) {
			editMeta(t, model, func(m *artifactMeta) { m.Statement = nil })
		},
		"metadata unreadable": func(t *testing.T, model string) {
			if err := os.WriteFile(metaPath(model), []byte("{"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			a := openTrusting(t, dir, s.trust)
			if err := a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{s.version(t, "m", "1", v1, 90), s.version(t, "m", "2", v2, 10)}, fetchAll(arts)); err != nil {
				t.Fatal(err)
			}
			a.Close()
			p := a.store.Path(modelfleet.ModelRef{Name: "m", Version: "2"}, digestOf(v2))
			tamper(t, p)
			b := openTrusting(t, dir, s.trust)
			if got := served(b, "m"); got != "1" {
				t.Fatalf("serving %q after version 2 was tampered with, want 1 alone", got)
			}
			if w := b.Traffic("m"); w["1"] != 100 {
				t.Fatalf("traffic %v, want version 1 at 100", w)
			}
			if r := b.Refused()["m"]; !strings.Contains(r, "version 2") {
				t.Fatalf("refusal reason %q does not name version 2", r)
			}
		})
	}
}

// An artifact URL that serves more than the signed size is cut off there:
// the disk never holds more than the signed size.
func TestDownloadStopsAtTheSignedSize(t *testing.T) {
	s := newSigner(t)
	v1 := fakeArtifact(0, 1, 1, 1)
	a := openTrusting(t, t.TempDir(), s.trust)
	var written int64
	endless := func(modelfleet.DesiredVersion) FetchFunc {
		return func(ctx context.Context, w io.Writer) error {
			chunk := make([]byte, 4096)
			for ctx.Err() == nil {
				n, err := w.Write(chunk)
				written += int64(n)
				if err != nil {
					return err
				}
				if written > 1<<30 {
					t.Fatal("an endless artifact was not cut off")
				}
			}
			return ctx.Err()
		}
	}
	err := a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{s.version(t, "m", "1", v1, 100)}, endless)
	if err == nil || !strings.Contains(err.Error(), "longer than its signed size") {
		t.Fatalf("apply: %v, want the download cut off at the signed size", err)
	}
	if written > int64(len(v1)) {
		t.Fatalf("%d bytes written, more than the signed %d", written, len(v1))
	}
	if got := served(a, "m"); got != "" {
		t.Fatalf("serving %q", got)
	}
}

// With no signed size (no release keys pinned), a download is cut off at
// the model budget: a file larger could not be loaded anyway.
func TestUnsignedDownloadStopsAtTheModelBudget(t *testing.T) {
	a, err := Open(t.TempDir(), Config{SiteID: "site-1", Loader: fakeLoad, Vectorizer: fakeVector, Logger: testLogger(t), MaxModelBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var written int64
	endless := func(modelfleet.DesiredVersion) FetchFunc {
		return func(ctx context.Context, w io.Writer) error {
			for written < 1<<20 {
				n, err := w.Write(make([]byte, 100))
				written += int64(n)
				if err != nil {
					return err
				}
			}
			return nil
		}
	}
	v := modelfleet.DesiredVersion{Version: "1", Digest: digestOf([]byte("x")), Format: modelfleet.FormatLightGBM, Features: testFeatures, Weight: 100, ArtifactURL: "https://example.invalid/1"}
	err = a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{v}, endless)
	if err == nil || !errors.Is(err, errTooLarge) {
		t.Fatalf("apply: %v, want the download cut off at the model budget", err)
	}
	if written > 1<<10 {
		t.Fatalf("%d bytes written past a budget of %d", written, 1<<10)
	}
}

// When the only version a site serves is refused at start (its file
// changed on disk), the site serves the versions the last change replaced:
// its previous good version, kept on disk and verified again.
func TestTamperedOnlyVersionFallsBackToThePreviousGoodOne(t *testing.T) {
	s := newSigner(t)
	v1, v2 := fakeArtifact(0, 1, 1, 1), fakeArtifact(1, 2, 2, 2)
	arts := map[string][]byte{"1": v1, "2": v2}
	dir := t.TempDir()
	a := openTrusting(t, dir, s.trust)
	for _, v := range []modelfleet.DesiredVersion{s.version(t, "m", "1", v1, 100), s.version(t, "m", "2", v2, 100)} {
		if err := a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{v}, fetchAll(arts)); err != nil {
			t.Fatal(err)
		}
	}
	if got := served(a, "m"); got != "2" {
		t.Fatalf("serving %q, want 2", got)
	}
	a.Close()
	p := a.store.Path(modelfleet.ModelRef{Name: "m", Version: "2"}, digestOf(v2))
	editMeta(t, p, func(m *artifactMeta) {
		m.Statement = &modelfleet.Envelope{PayloadType: modelfleet.InTotoPayloadType, Payload: []byte("{}"), Signatures: []modelfleet.Signature{}}
	})
	b := openTrusting(t, dir, s.trust)
	if got := served(b, "m"); got != "1" {
		t.Fatalf("serving %q after the only version was tampered with, want the previous good version 1", got)
	}
	if r := b.Refused()["m"]; !strings.Contains(r, "version 2") || !strings.Contains(r, "previous") {
		t.Fatalf("refusal reason %q", r)
	}
	// Without the previous version's own statement, nothing serves.
	b.Close()
	p1 := a.store.Path(modelfleet.ModelRef{Name: "m", Version: "1"}, digestOf(v1))
	editMeta(t, p1, func(m *artifactMeta) { m.Statement = nil })
	c := openTrusting(t, dir, s.trust)
	if got := served(c, "m"); got != "" {
		t.Fatalf("serving %q with no version that verifies", got)
	}
}

// A site checks a statement's signature once per trust: the same statement
// in the next desired state is matched against its version again, not
// verified again; a new trust (a revocation) verifies it anew and refuses
// it; and the trust the agent holds is its own copy.
func TestVerifiedStatementsAreRememberedUnderTheirTrustOnly(t *testing.T) {
	good := newSigner(t)
	v1, v2 := fakeArtifact(0, 1, 1, 1), fakeArtifact(1, 2, 2, 2)
	arts := map[string][]byte{"1": v1, "2": v2}
	trust := *good.trust
	a := openTrusting(t, t.TempDir(), &trust)
	one := good.version(t, "m", "1", v1, 100)
	for range 3 {
		if err := a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{one}, fetchAll(arts)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(a.verified.entries); n != 1 {
		t.Errorf("statements remembered = %d, want 1", n)
	}
	// The remembered statement still has to be for the version it comes with.
	moved := one
	moved.Digest, moved.Size = digestOf(v2), int64(len(v2))
	if err := a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{moved}, fetchAll(arts)); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "is for artifact") {
		t.Fatalf("a remembered statement with another artifact: %v, want refused", err)
	}
	// Revoking its key in the caller's copy changes nothing at the site...
	trust.Revoked = []string{good.trust.Keys[0].ID}
	if err := a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{one}, fetchAll(arts)); err != nil {
		t.Fatalf("after a change to the caller's trust: %v", err)
	}
	// ...setting it does: what was verified under the old trust is not
	// taken on the new one's behalf.
	a.SetTrust(&trust)
	if err := a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{one}, fetchAll(arts)); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not signed by a trusted key") {
		t.Fatalf("the same statement after its key's revocation: %v, want refused", err)
	}
	if got := served(a, "m"); got != "1" {
		t.Fatalf("serving %q, want the last good version 1", got)
	}
}

// editMeta rewrites the metadata kept beside the artifact at model.
func editMeta(t *testing.T, model string, edit func(*artifactMeta)) {
	t.Helper()
	m, err := readMeta(model)
	if err != nil {
		t.Fatal(err)
	}
	edit(&m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(metaPath(model), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A site upgraded from an agent that kept each statement in a file of its
// own (<digest>.statement.json) serves what verifies there, and refuses
// what does not.
func TestStatementFilesOfAnOlderAgentAreRead(t *testing.T) {
	s := newSigner(t)
	v1, v2 := fakeArtifact(0, 1, 1, 1), fakeArtifact(1, 2, 2, 2)
	arts := map[string][]byte{"1": v1, "2": v2}
	dir := t.TempDir()
	a := openTrusting(t, dir, s.trust)
	if err := a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{s.version(t, "m", "1", v1, 90), s.version(t, "m", "2", v2, 10)}, fetchAll(arts)); err != nil {
		t.Fatal(err)
	}
	a.Close()
	// As the older agent left them: each statement in its own file.
	for v, art := range arts {
		p := a.store.Path(modelfleet.ModelRef{Name: "m", Version: v}, digestOf(art))
		m, err := readMeta(p)
		if err != nil || m.Statement == nil {
			t.Fatalf("version %s: metadata %+v, %v", v, m, err)
		}
		b, _ := json.Marshal(m.Statement)
		if v == "2" {
			b = []byte(strings.Replace(string(b), `"sig":"`, `"sig":"AAAA`, 1))
		}
		if err := os.WriteFile(statementPath(p), b, 0o644); err != nil {
			t.Fatal(err)
		}
		editMeta(t, p, func(m *artifactMeta) { m.Statement = nil })
	}
	b := openTrusting(t, dir, s.trust)
	if got := served(b, "m"); got != "1" {
		t.Fatalf("serving %q: want version 1 alone (its statement file verifies, version 2's does not)", got)
	}
	if r := b.Refused()["m"]; !strings.Contains(r, "version 2") {
		t.Fatalf("refusal reason %q does not name version 2", r)
	}
}
