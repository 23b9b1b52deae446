package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"

	"github.com/modelfleet/modelfleet/agent"
)

// A site pins the gateway's release keys at enrolment: what the embedded
// stack's sites verify every version with.
func TestSitesPinTheReleaseKeysAtEnrolment(t *testing.T) {
	s := newAuthzStack(t)
	pinned, err := agent.LoadTrust(filepath.Join(s.dir, site1, "release-keys.json"))
	if err != nil || pinned == nil {
		t.Fatalf("no release keys pinned at enrolment (%v)", err)
	}
	want := s.gw.ReleaseSigner().(*ReleaseKeys).Trust()
	if len(pinned.Keys) != 1 || pinned.Keys[0].ID != want.Keys[0].ID {
		t.Fatalf("pinned %+v, want the gateway's release key %s", pinned.Keys, want.Keys[0].ID)
	}
	// The key set every desired state carries verifies with them.
	if _, ok, err := pinned.Update(s.gw.sec.release.KeySet()); err != nil || ok {
		t.Fatalf("the gateway's key set: taken %v, %v; want verified and not newer than the pinned one", ok, err)
	}
}

// The embedded stack's path without Temporal: a site enrols with a join
// token over the gateway's API, pins the release keys, then loads a version
// the gateway's keys signed and refuses an unsigned one, which it reports
// while it keeps serving the signed one.
func TestEnrolledSiteLoadsOnlySignedVersions(t *testing.T) {
	s := newAuthzStack(t)
	model := filepath.Join("..", "examples", "bearing-failure", "model.txt")
	art, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	card, err := ReadModelCard(filepath.Join("..", "examples", "bearing-failure", ModelCardFile))
	if err != nil {
		t.Fatal(err)
	}
	blobs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(art) }))
	defer blobs.Close()
	sum := sha256.Sum256(art)
	v1 := modelfleet.DesiredVersion{Version: "1", Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(art)), Format: card.Format, Features: card.Features, ArtifactURL: blobs.URL + "/1", Weight: 100}
	st := modelfleet.NewReleaseStatement(v1.Digest, v1.Size, modelfleet.ReleasePredicate{Model: "bearing-failure", Version: "1", Format: v1.Format, Features: v1.Features, Release: "release/bearing-failure/1"})
	if v1.Statement, err = s.gw.ReleaseSigner().SignRelease(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	tok, err := s.gw.JoinToken("site-9", map[string]string{"plant": "plant-a"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	site, err := agent.Open(agent.Config{SiteID: "site-9", DataDir: filepath.Join(s.dir, "site-9"), Listen: "127.0.0.1:0", GatewayURL: s.gw.URL(),
		HeartbeatInterval: 200 * time.Millisecond, NoSignals: true, JoinToken: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer site.Edge.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = site.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	wait := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	wait("the site to enrol and register", func() bool { _, err := s.gw.Directory.Get("site-9"); return err == nil && site.Edge.Trust() != nil })
	step := func(v modelfleet.DesiredVersion) {
		t.Helper()
		release := "release/bearing-failure/" + v.Version
		if _, err := s.gw.Directory.Step(modelfleet.StepRequest{Release: release, Model: "bearing-failure", New: v, Sites: []string{"site-9"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.gw.Directory.Finish(release, "bearing-failure", []string{"site-9"}); err != nil {
			t.Fatal(err)
		}
	}
	serves := func(version string) bool {
		for _, m := range site.Edge.Served() {
			if m.Name == "bearing-failure" && m.Version == version {
				return true
			}
		}
		return false
	}
	step(v1)
	wait("version 1 to serve", func() bool { return serves("1") })

	v2 := v1
	v2.Version, v2.Statement = "2", nil
	step(v2)
	var reason string
	wait("version 2 to be refused", func() bool {
		p, err := s.gw.Directory.Progress("bearing-failure", "2", []string{"site-9"})
		if err == nil && len(p.Failed) == 1 {
			reason = p.Failed[0].Reason
			return true
		}
		return false
	})
	if !strings.Contains(reason, "no signed release statement") || !serves("1") || serves("2") {
		t.Fatalf("refusal %q; serving %v, want version 1 only", reason, site.Edge.Served())
	}
}
