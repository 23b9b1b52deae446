package edge

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// status scores model with the bearer key ("" for none).
func status(a *Agent, model, key string) int {
	var h []string
	if key != "" {
		h = []string{"Authorization", "Bearer " + key}
	}
	return do(a.Handler(), "POST", "/score/"+model, goodRow, h...).Code
}

func wantStatus(t *testing.T, a *Agent, model, key string, want int) {
	t.Helper()
	if got := status(a, model, key); got != want {
		t.Errorf("score %s with key %q = %d, want %d", model, key, got, want)
	}
}

func TestKeyRotation(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	open := func() *Agent {
		a, err := Open(dir, Config{SiteID: "site-1", Loader: fakeLoad, Vectorizer: fakeVector,
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := open()
	data := fakeArtifact(0, 1, 1, 1)
	mustDeploy(t, a, deployReq("m", "1", data), data)
	mustDeploy(t, a, deployReq("n", "1", data), data)
	wantStatus(t, a, "m", "", 200) // no keys anywhere: no authentication

	if err := a.SetKeys("m", []string{"old-secret"}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, a, "m", "", 401)
	wantStatus(t, a, "m", "old-secret", 200)
	wantStatus(t, a, "n", "", 200) // keys of m protect m only
	// Rotation: both valid while the clients move, then the old one revoked.
	if err := a.SetKeys("m", []string{"old-secret", "new-secret"}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, a, "m", "old-secret", 200)
	wantStatus(t, a, "m", "new-secret", 200)
	if err := a.SetKeys("m", []string{"new-secret"}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, a, "m", "old-secret", 401)
	wantStatus(t, a, "m", "new-secret", 200)
	wantStatus(t, a, "n", "new-secret", 200)

	// Site-wide keys open every model; a model's key opens only its own.
	if err := a.SetKeys("", []string{"site-secret"}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, a, "m", "site-secret", 200)
	wantStatus(t, a, "n", "site-secret", 200)
	wantStatus(t, a, "n", "new-secret", 401)
	wantStatus(t, a, "n", "", 401)
	// An unknown model says 401, not 404, to a caller without a key.
	wantStatus(t, a, "pump", "", 401)
	wantStatus(t, a, "pump", "new-secret", 404)

	// A restart keeps every key, from their hashes.
	b := open()
	wantStatus(t, b, "m", "new-secret", 200)
	wantStatus(t, b, "m", "old-secret", 401)
	wantStatus(t, b, "n", "site-secret", 200)
	wantStatus(t, b, "n", "", 401)
	// No keys remove a set.
	if err := b.SetKeys("", nil); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, b, "n", "", 200)
	wantStatus(t, b, "m", "", 401)

	stored, err := os.ReadFile(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, where := range []struct{ name, text string }{{"keys.json", string(stored)}, {"the log", logs.String()}} {
		if strings.Contains(where.text, "secret") {
			t.Errorf("%s holds a key:\n%s", where.name, where.text)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "keys.json")); fi.Mode().Perm() != 0o600 {
		t.Errorf("keys.json mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestConfigKeysOverridePersistedSiteKeys(t *testing.T) {
	dir := t.TempDir()
	a := openAgent(t, dir)
	data := fakeArtifact(0, 1, 1, 1)
	mustDeploy(t, a, deployReq("m", "1", data), data)
	if err := a.SetKeys("", []string{"persisted"}); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir, Config{SiteID: "site-1", Loader: fakeLoad, Vectorizer: fakeVector, Keys: []string{"configured"}})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, b, "m", "configured", 200)
	wantStatus(t, b, "m", "persisted", 401)
}

func TestSetKeysRejects(t *testing.T) {
	a := openAgent(t, t.TempDir())
	for name, c := range map[string]struct {
		model string
		keys  []string
	}{
		"bad model": {"../m", []string{"k"}},
		"empty key": {"m", []string{"k", ""}},
	} {
		if err := a.SetKeys(c.model, c.keys); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Errorf("%s: SetKeys = %v, want invalid", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(a.store.Dir(), "keys.json")); err == nil {
		t.Error("a rejected SetKeys wrote keys.json")
	}
}

func TestCorruptKeysFileStopsOpen(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "keys.json"), []byte(`{"models":{"m":["not hex"]}}`), 0o600)
	if _, err := Open(dir, Config{SiteID: "site-1", Loader: fakeLoad, Vectorizer: fakeVector}); err == nil {
		t.Fatal("Open served models without the keys keys.json protects them with")
	}
}
