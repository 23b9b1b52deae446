package edge

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// FuzzOpenSiteFiles opens a site directory whose state.json and keys.json
// hold anything: Open fails or serves, never panics, and a version it
// serves is one state.json lists (current or previous).
func FuzzOpenSiteFiles(f *testing.F) {
	f.Add([]byte(`{"models":[{"name":"m","version":"1","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","format":"lightgbm","features":["a"],"weight":100}]}`),
		[]byte(`{"site":["00"],"models":{"m":["ab"]}}`))
	f.Add([]byte(`{"models":[{"name":"../x","version":"1"}]}`), []byte(`{}`))
	f.Add([]byte(`not json`), []byte(`{"models":{"":[]}}`))
	trust := &modelfleet.Trust{}
	f.Fuzz(func(t *testing.T, state, keys []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, stateFile), state, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, keysFileName), keys, 0o644); err != nil {
			t.Fatal(err)
		}
		a, err := Open(dir, Config{SiteID: "s", Loader: fakeLoad, Vectorizer: fakeVector, Trust: trust})
		if err != nil {
			return
		}
		defer a.Close()
		listed := map[string]bool{}
		st := a.store.State()
		for _, e := range st.Models {
			listed[e.Name+":"+e.Version] = true
		}
		for _, es := range st.Previous {
			for _, e := range es {
				listed[e.Name+":"+e.Version] = true
			}
		}
		for _, m := range a.Served() {
			if !listed[m.String()] {
				t.Fatalf("serves %s, which state.json does not list", m)
			}
		}
	})
}
