package edge

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// Keys of the length the keys file asks for.
const (
	oldKey  = "old-key-0123456789abcdef"
	newKey  = "new-key-0123456789abcdef"
	siteKey = "site-key-0123456789abcdef"
	cpKey   = "control-plane-key-0123456789"
)

func keysDoc(site []string, models map[string][]string) string {
	var b strings.Builder
	b.WriteString("apiVersion: modelfleet.dev/v1\nkind: RouterAPIKeys\n")
	if len(site) > 0 {
		fmt.Fprintf(&b, "site:\n  keys: [%s]\n", strings.Join(site, ", "))
	}
	if len(models) > 0 {
		b.WriteString("models:\n")
		for m, ks := range models {
			fmt.Fprintf(&b, "  %s:\n    keys: [%s]\n", m, strings.Join(ks, ", "))
		}
	}
	return b.String()
}

// secretMount writes doc the way the kubelet updates a mounted Secret: the
// new content in a fresh timestamped directory, then the ..data symlink
// swapped to it with a rename, the file itself a symlink through ..data.
type secretMount struct {
	t   *testing.T
	dir string
	n   int
}

func newSecretMount(t *testing.T, doc string) *secretMount {
	m := &secretMount{t: t, dir: t.TempDir()}
	m.update(doc)
	if err := os.Symlink(filepath.Join("..data", "api-keys.yaml"), filepath.Join(m.dir, "api-keys.yaml")); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *secretMount) path() string { return filepath.Join(m.dir, "api-keys.yaml") }

func (m *secretMount) update(doc string) {
	m.t.Helper()
	m.n++
	ts := fmt.Sprintf("..2026_12_06_%04d", m.n)
	if err := os.Mkdir(filepath.Join(m.dir, ts), 0o755); err != nil {
		m.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, ts, "api-keys.yaml"), []byte(doc), 0o600); err != nil {
		m.t.Fatal(err)
	}
	tmp := filepath.Join(m.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, "..data")); err != nil {
		m.t.Fatal(err)
	}
}

func openWithKeysFile(t *testing.T, dir, file string, logs *bytes.Buffer) *Agent {
	t.Helper()
	a, err := Open(dir, Config{SiteID: "site-1", Loader: fakeLoad, Vectorizer: fakeVector, KeysFile: file,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

func reload(t *testing.T, a *Agent, want bool) {
	t.Helper()
	changed, err := a.ReloadKeysFile()
	if err != nil {
		t.Fatal(err)
	}
	if changed != want {
		t.Fatalf("ReloadKeysFile changed = %v, want %v", changed, want)
	}
}

func TestKeysFileRotation(t *testing.T) {
	var logs bytes.Buffer
	mount := newSecretMount(t, keysDoc(nil, map[string][]string{"m": {oldKey}}))
	a := openWithKeysFile(t, t.TempDir(), mount.path(), &logs)
	data := fakeArtifact(0, 1, 1, 1)
	mustDeploy(t, a, deployReq("m", "1", data), data)
	mustDeploy(t, a, deployReq("n", "1", data), data)
	wantStatus(t, a, "m", "", 401)
	wantStatus(t, a, "m", oldKey, 200)
	wantStatus(t, a, "n", "", 200) // the file sets keys for m only
	reload(t, a, false)            // nothing changed: nothing to do

	// Rotation, step 1: both keys. The old key keeps working.
	mount.update(keysDoc(nil, map[string][]string{"m": {oldKey, newKey}}))
	wantStatus(t, a, "m", newKey, 401) // not read yet
	reload(t, a, true)
	wantStatus(t, a, "m", oldKey, 200)
	wantStatus(t, a, "m", newKey, 200)

	// A broken update, or the file gone for a moment, changes nothing.
	mount.update("apiVersion: modelfleet.dev/v1\nkind: RouterAPIKeys\nmodels: {m: {keys: [short]}}\n")
	if _, err := a.ReloadKeysFile(); err == nil || strings.Contains(err.Error(), "short") {
		t.Fatalf("bad file: %v, want an error that does not quote the key", err)
	}
	wantStatus(t, a, "m", oldKey, 200)
	wantStatus(t, a, "m", newKey, 200)
	wantStatus(t, a, "m", "", 401)
	os.Remove(mount.path())
	if _, err := a.ReloadKeysFile(); err == nil {
		t.Fatal("a missing file was not an error")
	}
	wantStatus(t, a, "m", "", 401)
	wantStatus(t, a, "m", oldKey, 200)
	os.Symlink(filepath.Join("..data", "api-keys.yaml"), mount.path())

	// Step 2: the old key dropped. From then on it is refused.
	mount.update(keysDoc(nil, map[string][]string{"m": {newKey}}))
	reload(t, a, true)
	wantStatus(t, a, "m", oldKey, 401)
	wantStatus(t, a, "m", newKey, 200)

	// Site-wide keys from the file open every model.
	mount.update(keysDoc([]string{siteKey}, map[string][]string{"m": {newKey}}))
	reload(t, a, true)
	wantStatus(t, a, "n", siteKey, 200)
	wantStatus(t, a, "n", "", 401)
	wantStatus(t, a, "m", siteKey, 200)

	for _, k := range []string{oldKey, newKey, siteKey} {
		if strings.Contains(logs.String(), k) {
			t.Errorf("the log holds a key:\n%s", logs.String())
		}
	}
}

func TestKeysFileStopsOpenWhenBad(t *testing.T) {
	for name, doc := range map[string]string{
		"not yaml":    "{",
		"wrong kind":  "apiVersion: modelfleet.dev/v1\nkind: Keys\n",
		"short key":   keysDoc([]string{"short"}, nil),
		"unknown key": "apiVersion: modelfleet.dev/v1\nkind: RouterAPIKeys\nsite: {keys: [" + oldKey + "], extra: 1}\n",
	} {
		p := filepath.Join(t.TempDir(), "keys.yaml")
		os.WriteFile(p, []byte(doc), 0o600)
		if _, err := Open(t.TempDir(), Config{SiteID: "s", Loader: fakeLoad, Vectorizer: fakeVector, KeysFile: p}); err == nil {
			t.Errorf("%s: Open served without the keys the file was to set", name)
		}
	}
	if _, err := Open(t.TempDir(), Config{SiteID: "s", Loader: fakeLoad, Vectorizer: fakeVector, KeysFile: filepath.Join(t.TempDir(), "none")}); err == nil {
		t.Error("Open started without its keys file")
	}
}

// TestKeysFileRotationUnderLoad scores without pause while the mounted
// Secret rotates old → old+new → new: a key valid before and after a swap
// is never refused during it, and the old key works until the file drops
// it.
func TestKeysFileRotationUnderLoad(t *testing.T) {
	mount := newSecretMount(t, keysDoc(nil, map[string][]string{"m": {oldKey}}))
	a := openWithKeysFile(t, t.TempDir(), mount.path(), &bytes.Buffer{})
	data := fakeArtifact(0, 1, 1, 1)
	mustDeploy(t, a, deployReq("m", "1", data), data)

	// The sequence of key sets the file goes through, and gen: 2k while
	// the router is known to hold sets[k], 2k+1 while it moves to
	// sets[k+1]. A client reads gen before and after its request: a key
	// valid in every set that may have been in force must pass, a key
	// valid in none must be refused.
	sets := [][]string{{oldKey}}
	for range 40 {
		sets = append(sets, []string{oldKey, newKey}, []string{newKey}, []string{oldKey, newKey}, []string{oldKey})
	}
	var gen atomic.Int64
	validIn := func(key string, k int64) bool { return slices.Contains(sets[k], key) }
	var wrong, requests atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		key := oldKey
		if i%2 == 1 {
			key = newKey
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				g1 := gen.Load()
				code := status(a, "m", key)
				g2 := gen.Load()
				requests.Add(1)
				all, none := true, true
				for k := g1 / 2; k <= (g2+1)/2; k++ {
					v := validIn(key, k)
					all, none = all && v, none && !v
				}
				if (code == 401 && all) || (code == 200 && none) || (code != 200 && code != 401) {
					wrong.Add(1)
				}
			}
		}()
	}
	for k := 1; k < len(sets); k++ {
		gen.Add(1)
		mount.update(keysDoc(nil, map[string][]string{"m": sets[k]}))
		reload(t, a, true)
		gen.Add(1)
	}
	close(stop)
	wg.Wait()
	if n := wrong.Load(); n > 0 {
		t.Errorf("%d of %d requests were answered against the keys in force", n, requests.Load())
	}
}

func TestKeyPrecedence(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	p := filepath.Join(t.TempDir(), "keys.yaml")
	os.WriteFile(p, []byte(keysDoc(nil, map[string][]string{"m": {oldKey}})), 0o600)
	a := openWithKeysFile(t, dir, p, &logs)
	data := fakeArtifact(0, 1, 1, 1)
	for _, m := range []string{"m", "n", "o"} {
		mustDeploy(t, a, deployReq(m, "1", data), data)
	}
	// Local keys for every model, site-wide too.
	for _, m := range []string{"", "m", "n", "o"} {
		if err := a.SetKeys(m, []string{"local-" + m}); err != nil {
			t.Fatal(err)
		}
	}
	// The control plane sets n and the site-wide scope.
	cp := &modelfleet.APIKeys{SHA256: []string{modelfleet.HashAPIKey(siteKey)},
		Models: map[string]modelfleet.KeyHashes{"n": {SHA256: []string{modelfleet.HashAPIKey(cpKey)}}, "m": {SHA256: []string{modelfleet.HashAPIKey(cpKey)}}}}
	if err := a.SetDesiredKeys(cp); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, a, "m", oldKey, 200)    // the file wins for m
	wantStatus(t, a, "m", cpKey, 401)     // over the desired state
	wantStatus(t, a, "m", "local-m", 401) // and the local keys
	wantStatus(t, a, "n", cpKey, 200)     // the desired state wins for n
	wantStatus(t, a, "n", "local-n", 401) // over the local keys
	wantStatus(t, a, "o", "local-o", 200) // nobody else sets o
	wantStatus(t, a, "o", siteKey, 200)   // site-wide: the desired state's
	wantStatus(t, a, "o", "local-", 401)  // not the local ones
	wantStatus(t, a, "o", cpKey, 401)     // n's key opens n only

	// A restart offline keeps the desired state's keys.
	a.Close()
	b := openWithKeysFile(t, dir, p, &logs)
	wantStatus(t, b, "n", cpKey, 200)
	wantStatus(t, b, "n", "local-n", 401)
	wantStatus(t, b, "o", siteKey, 200)

	// Removed from the desired state, a scope falls back to the local keys.
	if err := b.SetDesiredKeys(nil); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, b, "n", cpKey, 401)
	wantStatus(t, b, "n", "local-n", 200)
	wantStatus(t, b, "o", "local-", 200)
	stored, _ := os.ReadFile(filepath.Join(dir, keysFileName))
	if strings.Contains(string(stored), "desired") {
		t.Errorf("keys.json keeps the removed desired keys:\n%s", stored)
	}

	// The same keys, however written, change nothing on disk.
	siteOnly := &modelfleet.APIKeys{SHA256: cp.SHA256}
	if err := b.SetDesiredKeys(siteOnly); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(filepath.Join(dir, keysFileName))
	b.Close()
	c := openWithKeysFile(t, dir, p, &logs)
	if err := c.SetDesiredKeys(&modelfleet.APIKeys{SHA256: cp.SHA256, Models: map[string]modelfleet.KeyHashes{}}); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(filepath.Join(dir, keysFileName)); !os.SameFile(before, after) {
		t.Error("applying the keys in force rewrote keys.json")
	}
	if err := c.SetDesiredKeys(&modelfleet.APIKeys{Models: map[string]modelfleet.KeyHashes{}}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, "n", "local-n", 200) // an empty set is no set
	if err := c.SetDesiredKeys(cp); err != nil {
		t.Fatal(err)
	}
	b = c

	// A bad set is refused whole: the keys in force stay.
	if err := b.SetDesiredKeys(cp); err != nil {
		t.Fatal(err)
	}
	bad := cp.Clone()
	bad.Models["o"] = modelfleet.KeyHashes{SHA256: []string{"zz"}}
	if err := b.SetDesiredKeys(bad); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Fatalf("bad desired keys: %v, want invalid", err)
	}
	wantStatus(t, b, "n", cpKey, 200)
	wantStatus(t, b, "o", "local-o", 200)
}

func TestAPIModelsNeedsAKey(t *testing.T) {
	a := openAgent(t, t.TempDir())
	data := fakeArtifact(0, 1, 1, 1)
	mustDeploy(t, a, deployReq("m", "1", data), data)
	mustDeploy(t, a, deployReq("n", "1", data), data)
	list := func(key string) int {
		var h []string
		if key != "" {
			h = []string{"Authorization", "Bearer " + key}
		}
		return do(a.Handler(), "GET", "/api/models", "", h...).Code
	}
	if got := list(""); got != 200 {
		t.Fatalf("no keys anywhere: GET /api/models = %d, want 200", got)
	}
	if err := a.SetKeys("m", []string{"model-m-key"}); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]int{"": 401, "wrong": 401, "model-m-key": 200} {
		if got := list(key); got != want {
			t.Errorf("model keys only: GET /api/models with %q = %d, want %d", key, got, want)
		}
	}
	if err := a.SetKeys("", []string{"site-wide-key"}); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]int{"": 401, "site-wide-key": 200, "model-m-key": 200} {
		if got := list(key); got != want {
			t.Errorf("GET /api/models with %q = %d, want %d", key, got, want)
		}
	}
	rec := do(a.Handler(), "GET", "/api/models", "")
	if rec.Header().Get("WWW-Authenticate") == "" || strings.Contains(rec.Body.String(), `"n"`) {
		t.Errorf("refused list: %v %s", rec.Header(), rec.Body)
	}
}

func TestFeedbackNeedsTheModelsKey(t *testing.T) {
	a := openAgent(t, t.TempDir())
	data := fakeArtifact(0, 1, 1, 1)
	mustDeploy(t, a, deployReq("m", "1", data), data)
	mustDeploy(t, a, deployReq("n", "1", data), data)
	if err := a.SetDesiredKeys(&modelfleet.APIKeys{Models: map[string]modelfleet.KeyHashes{
		"m": {SHA256: []string{modelfleet.HashAPIKey(oldKey)}}, "n": {SHA256: []string{modelfleet.HashAPIKey(newKey)}}}}); err != nil {
		t.Fatal(err)
	}
	if rec := do(a.Handler(), "POST", "/score/m", goodRow, "Authorization", "Bearer "+oldKey, HeaderRequestID, "r1"); rec.Code != 200 {
		t.Fatalf("score: %d %s", rec.Code, rec.Body)
	}
	fb := `{"requestId":"r1","label":1}`
	for key, want := range map[string]int{"": 401, newKey: 401, "nonsense": 401} {
		h := []string{}
		if key != "" {
			h = []string{"Authorization", "Bearer " + key}
		}
		if rec := do(a.Handler(), "POST", "/feedback/m", fb, h...); rec.Code != want {
			t.Errorf("feedback for m with %q: %d, want %d", key, rec.Code, want)
		}
	}
	if rec := do(a.Handler(), "POST", "/feedback/m", fb, "Authorization", "Bearer "+oldKey); rec.Code != 200 {
		t.Errorf("feedback for m with its key: %d %s", rec.Code, rec.Body)
	}
}

func TestParseKeysFile(t *testing.T) {
	h := modelfleet.HashAPIKey(oldKey)
	ok := map[string]string{
		"keys":   keysDoc([]string{oldKey}, map[string][]string{"m": {newKey, siteKey}}),
		"hashes": "apiVersion: modelfleet.dev/v1\nkind: RouterAPIKeys\nmodels: {m: {sha256: [" + h + "]}}\n",
		"json":   `{"apiVersion":"modelfleet.dev/v1","kind":"RouterAPIKeys","site":{"sha256":["` + h + `"],"keys":["` + newKey + `"]}}`,
		"none":   "apiVersion: modelfleet.dev/v1\nkind: RouterAPIKeys\n",
	}
	for name, doc := range ok {
		if _, err := ParseKeysFile([]byte(doc)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	many := make([]string, modelfleet.MaxAPIKeysPerScope+1)
	for i := range many {
		many[i] = fmt.Sprintf("key-%020d", i)
	}
	bad := map[string]string{
		"empty":          "",
		"no kind":        "apiVersion: modelfleet.dev/v1\n",
		"two documents":  keysDoc([]string{oldKey}, nil) + "---\n" + keysDoc([]string{oldKey}, nil),
		"unknown field":  keysDoc([]string{oldKey}, nil) + "other: 1\n",
		"duplicate":      keysDoc([]string{oldKey}, nil) + "kind: RouterAPIKeys\n",
		"empty scope":    "apiVersion: modelfleet.dev/v1\nkind: RouterAPIKeys\nsite: {}\n",
		"bad model":      keysDoc(nil, map[string][]string{"../m": {oldKey}}),
		"short key":      keysDoc([]string{"0123"}, nil),
		"space in key":   "apiVersion: modelfleet.dev/v1\nkind: RouterAPIKeys\nsite: {keys: [\"abc def 0123456789abc\"]}\n",
		"bad hash":       "apiVersion: modelfleet.dev/v1\nkind: RouterAPIKeys\nsite: {sha256: [" + strings.ToUpper(h) + "]}\n",
		"same key twice": keysDoc([]string{oldKey, oldKey}, nil),
		"too many keys":  keysDoc(many, nil),
		"too large":      keysDoc([]string{oldKey}, nil) + "# " + strings.Repeat("x", MaxKeysFileBytes),
	}
	for name, doc := range bad {
		_, err := ParseKeysFile([]byte(doc))
		if c := modelfleet.ErrorCode(err); c != modelfleet.EINVALID && c != modelfleet.ETOOLARGE {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	models := map[string][]string{}
	for i := range modelfleet.MaxAPIKeyModels + 1 {
		models[fmt.Sprintf("m%d", i)] = []string{oldKey}
	}
	if _, err := ParseKeysFile([]byte(keysDoc(nil, models))); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("too many models: %v", err)
	}
}

// FuzzParseKeysFile: whatever the file holds, parsing never panics, and
// what it accepts is within bounds and installs as a key table.
func FuzzParseKeysFile(f *testing.F) {
	f.Add([]byte(keysDoc([]string{oldKey}, map[string][]string{"m": {newKey}})))
	f.Add([]byte(`{"apiVersion":"modelfleet.dev/v1","kind":"RouterAPIKeys","site":{"sha256":["` + modelfleet.HashAPIKey(oldKey) + `"]}}`))
	f.Add([]byte("apiVersion: modelfleet.dev/v1\nkind: RouterAPIKeys\nmodels: &a {m: *a}\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		kf, err := ParseKeysFile(b)
		if err != nil {
			return
		}
		if len(kf.Models) > modelfleet.MaxAPIKeyModels {
			t.Fatalf("accepted %d models", len(kf.Models))
		}
		l, err := kf.layer(nil)
		if err != nil {
			t.Fatalf("accepted a file whose keys do not install: %v", err)
		}
		kt := effectiveKeys(l)
		if kf.Site != nil && !kt.site.required {
			t.Fatal("site-wide keys accepted but not required")
		}
		for m := range kf.Models {
			if !kt.models[m].required {
				t.Fatalf("keys of %q accepted but not required", m)
			}
		}
		_ = context.Background()
	})
}

// The router's own key (what the agent gives the workloads it hosts) is
// valid for every model whatever keys are set, and survives every change
// of them; another router's is not.
func TestInternalKeyOutlivesKeyChanges(t *testing.T) {
	a := openAgent(t, t.TempDir())
	data := fakeArtifact(0, 1, 1, 1)
	mustDeploy(t, a, deployReq("m", "1", data), data)
	internal := a.Router().InternalKey()
	if len(internal) < 32 || internal == openAgent(t, t.TempDir()).Router().InternalKey() {
		t.Fatalf("internal key %q is not a random key of its own", internal)
	}
	score := func(key string) int {
		return do(a.Handler(), "POST", "/score/m", goodRow, "Authorization", "Bearer "+key).Code
	}
	if err := a.SetKeys("m", []string{"model-m-key-0123456789"}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetKeys("", []string{"site-wide-key-0123456789"}); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]int{internal: 200, "model-m-key-0123456789": 200, "wrong-key-0123456789": 401, internal[:len(internal)-1]: 401} {
		if got := score(key); got != want {
			t.Errorf("score with %.12q… = %d, want %d", key, got, want)
		}
	}
	if got := do(a.Handler(), "GET", "/api/models", "", "Authorization", "Bearer "+internal).Code; got != 200 {
		t.Errorf("GET /api/models with the internal key = %d", got)
	}
	if err := a.SetDesiredKeys(&modelfleet.APIKeys{SHA256: []string{strings.Repeat("ab", 32)}}); err != nil {
		t.Fatal(err)
	}
	if got := score(internal); got != 200 {
		t.Errorf("after the desired state's keys, the internal key scores %d", got)
	}
}
