package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/registry"
)

func releaseKey(t *testing.T) (ed25519.PrivateKey, modelfleet.TrustedKey) {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := k.Public().(ed25519.PublicKey)
	return k, modelfleet.TrustedKey{ID: modelfleet.KeyID(pub), PublicKey: pub}
}

func signVersion(t *testing.T, v modelfleet.DesiredVersion, size int64, keys ...ed25519.PrivateKey) modelfleet.DesiredVersion {
	t.Helper()
	st := modelfleet.NewReleaseStatement(v.Digest, size, modelfleet.ReleasePredicate{Model: "bearing-failure", Version: v.Version, Format: v.Format, Features: v.Features, Baseline: v.Baseline, Server: v.Server, Release: "release/bearing-failure/" + v.Version})
	env, err := modelfleet.SignStatement(st, keys)
	if err != nil {
		t.Fatal(err)
	}
	v.Size, v.Statement = size, env
	return v
}

// A site with pinned release keys refuses an unsigned step, keeps serving
// its last good version and reports why (what the release's status shows
// and its failure budget counts); it learns a rotated key and a revocation
// from the signed key set its desired state carries.
func TestSiteRefusesUnsignedStepsAndLearnsRotatedKeys(t *testing.T) {
	dir := t.TempDir()
	vs := exampleVersions(t, dir, "1", "2", "3", "4")
	oldKey, oldPub := releaseKey(t)
	newKey, newPub := releaseKey(t)
	keysFile := filepath.Join(dir, "release-keys.json")
	if err := saveTrust(keysFile, &modelfleet.Trust{Keys: []modelfleet.TrustedKey{oldPub}, Serial: 1}); err != nil {
		t.Fatal(err)
	}
	gw, err := OpenGateway(GatewayConfig{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if _, err := gw.Directory.Put(modelfleet.Site{ID: "s1", TaskQueue: modelfleet.SiteTaskQueue("s1")}); err != nil {
		t.Fatal(err)
	}
	step := func(v modelfleet.DesiredVersion) {
		t.Helper()
		release := "release/bearing-failure/" + v.Version
		if _, err := gw.Directory.Step(modelfleet.StepRequest{Release: release, Model: "bearing-failure", New: v, Sites: []string{"s1"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := gw.Directory.Finish(release, "bearing-failure", []string{"s1"}); err != nil {
			t.Fatal(err)
		}
	}
	failure := func(version string) string {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			p, err := gw.Directory.Progress("bearing-failure", version, []string{"s1"})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Failed) == 1 {
				return p.Failed[0].Reason
			}
		}
		t.Fatalf("the site never reported version %s failed", version)
		return ""
	}
	e, err := Open(Config{SiteID: "s1", DataDir: filepath.Join(dir, "site"), Listen: "127.0.0.1:0", GatewayURL: gw.URL(), HeartbeatInterval: 200 * time.Millisecond, ReleaseKeysFile: keysFile})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; e.Edge.Close() }()

	// Every version registers the example's model file.
	fi, err := os.Stat(filepath.Join("..", "examples", "bearing-failure", "model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	size := func(modelfleet.DesiredVersion) int64 { return fi.Size() }
	step(signVersion(t, vs[0], size(vs[0]), oldKey))
	waitServing(t, e, "1")

	step(vs[1]) // unsigned
	if r := failure("2"); !strings.Contains(r, "no signed release statement") {
		t.Fatalf("reported %q, want the missing statement named", r)
	}
	if got := servedVersion(t, e); got != "1" {
		t.Fatalf("serving %q after a refused step, want the last good version 1", got)
	}

	// Rotate: the new key signs, the old is revoked; the key set is signed
	// by both, so the site, which knows the old key only, takes it.
	set, err := modelfleet.SignKeySet(modelfleet.Trust{Keys: []modelfleet.TrustedKey{newPub}, Revoked: []string{oldPub.ID}, Serial: 2}, []ed25519.PrivateKey{newKey, oldKey})
	if err != nil {
		t.Fatal(err)
	}
	gw.Directory.SetReleaseKeys(set)
	step(signVersion(t, vs[2], size(vs[2]), oldKey)) // by the revoked key
	if r := failure("3"); !strings.Contains(r, "not signed by a trusted key") {
		t.Fatalf("reported %q, want the revoked key refused", r)
	}
	step(signVersion(t, vs[3], size(vs[3]), newKey))
	waitServing(t, e, "4")
}

// A download that stalls is cut off by the download timeout, however long
// its server holds the connection open.
func TestStalledDownloadIsCutOffByTheTimeout(t *testing.T) {
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		_, _ = w.Write([]byte("a few bytes, then nothing"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer stall.Close()
	s := &Site{cfg: Config{DownloadTimeout: 200 * time.Millisecond}}
	v := modelfleet.DesiredVersion{Version: "1", Digest: "sha256:" + strings.Repeat("0", 64), Size: 100, ArtifactURL: stall.URL + "/a"}
	start := time.Now()
	err := s.fetchArtifact(&registry.Client{}, v)(context.Background(), io.Discard)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("a stalled download ended after %s with %v, want cut off at the timeout", time.Since(start), err)
	}
}

// A site upgraded to signed releases keeps what it ran before it pinned
// keys: those versions load without a statement (at start and in a split
// beside a signed version), and nothing else unsigned does.
func TestVersionsServedBeforeKeysAreGrandfathered(t *testing.T) {
	dir := t.TempDir()
	vs := exampleVersions(t, dir, "1", "2", "3")
	key, pub := releaseKey(t)
	gw, err := OpenGateway(GatewayConfig{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if _, err := gw.Directory.Put(modelfleet.Site{ID: "s1", TaskQueue: modelfleet.SiteTaskQueue("s1")}); err != nil {
		t.Fatal(err)
	}
	step := func(v modelfleet.DesiredVersion) {
		t.Helper()
		release := "release/bearing-failure/" + v.Version
		if _, err := gw.Directory.Step(modelfleet.StepRequest{Release: release, Model: "bearing-failure", New: v, Sites: []string{"s1"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := gw.Directory.Finish(release, "bearing-failure", []string{"s1"}); err != nil {
			t.Fatal(err)
		}
	}
	keysFile := filepath.Join(dir, "release-keys.json")
	start := func(keys string) (*Site, func()) {
		e, err := Open(Config{SiteID: "s1", DataDir: filepath.Join(dir, "site"), Listen: "127.0.0.1:0", GatewayURL: gw.URL(), HeartbeatInterval: 200 * time.Millisecond, ReleaseKeysFile: keys})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { e.Run(ctx); close(done) }()
		return e, func() { cancel(); <-done; e.Edge.Close() }
	}
	// Before signed releases: version 1, unsigned.
	e, stop := start("")
	step(vs[0])
	waitServing(t, e, "1")
	stop()

	// Keys pinned: 1 still serves after the restart.
	if err := saveTrust(keysFile, &modelfleet.Trust{Keys: []modelfleet.TrustedKey{pub}, Serial: 1}); err != nil {
		t.Fatal(err)
	}
	e, stop = start(keysFile)
	defer stop()
	if got := servedVersion(t, e); got != "1" {
		t.Fatalf("after pinning keys the site serves %q, want version 1 it ran before", got)
	}
	// A signed 2 at 10% beside the unsigned 1 applies.
	fi, err := os.Stat(filepath.Join("..", "examples", "bearing-failure", "model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	v2 := signVersion(t, vs[1], fi.Size(), key)
	v2.Weight = 10
	if _, err := gw.Directory.Step(modelfleet.StepRequest{Release: "release/bearing-failure/2", Model: "bearing-failure", New: v2, Sites: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	p := awaitProgress(t, gw.Directory, "2")
	if len(p.Converged) != 1 {
		t.Fatalf("signed 2 beside grandfathered 1: %+v", p)
	}
	if _, err := gw.Directory.Finish("release/bearing-failure/2", "bearing-failure", []string{"s1"}); err != nil {
		t.Fatal(err)
	}
	// An unsigned 3 (other bytes) was never run here: refused.
	v3 := vs[2]
	v3.Digest = "sha256:" + strings.Repeat("e", 64)
	step(v3)
	if p := awaitProgress(t, gw.Directory, "3"); len(p.Failed) != 1 || !strings.Contains(p.Failed[0].Reason, "no signed release statement") {
		t.Fatalf("unsigned 3: %+v", p)
	}
}
