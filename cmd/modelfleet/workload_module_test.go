package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// `workload build` builds the example's module from source, and `workload
// register --module` uploads it, fills the manifest's module.digest and
// registers the version at a real fleet directory; a manifest naming
// another module is refused before anything is uploaded.
func TestWorkloadBuildAndRegisterModule(t *testing.T) {
	d, err := fleet.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	t.Setenv("MODELFLEET_GATEWAY_URL", srv.URL)
	dir := t.TempDir()
	mod := filepath.Join(dir, "line.wasm")
	run := func(args ...string) error {
		root := newRoot()
		root.SetArgs(args)
		return root.ExecuteContext(context.Background())
	}
	if err := run("workload", "build", "../../examples/bearing-failure/workload/module", "-o", mod); err != nil {
		t.Fatal(err)
	}
	if err := run("workload", "build", filepath.Join(dir, "nothing"), "-o", mod+".2"); err == nil {
		t.Error("built a directory that does not exist")
	}
	doc, err := os.ReadFile("../../examples/bearing-failure/workload/workload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	v2 := filepath.Join(dir, "workload.yaml")
	if err := os.WriteFile(v2, []byte(strings.Replace(string(doc), `version: "1"`, `version: "2"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	written := filepath.Join(dir, "registered.yaml")
	if err := run("workload", "register", v2, "--module", mod, "--write", written); err != nil {
		t.Fatal(err)
	}
	rec, err := d.Workload("bearing-failure-line", "2")
	if err != nil {
		t.Fatal(err)
	}
	m, err := spec.ParseManifest([]byte(rec.Manifest))
	if err != nil || m.Module == nil {
		t.Fatalf("registered manifest names no module: %v\n%s", err, rec.Manifest)
	}
	code, err := os.ReadFile(mod)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.URL + "/api/artifacts/" + m.Module.Digest)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(stored, code) {
		t.Fatalf("module %s not stored (%s, %d bytes)", m.Module.Digest, resp.Status, len(stored))
	}
	if w, _ := os.ReadFile(written); string(w) != rec.Manifest {
		t.Errorf("--write wrote\n%s\nwant what was registered", w)
	}
	other := filepath.Join(dir, "other.yaml")
	bad := strings.Replace(rec.Manifest, `version: "2"`, `version: "3"`, 1)
	bad = strings.Replace(bad, m.Module.Digest, "sha256:"+strings.Repeat("0", 64), 1)
	if err := os.WriteFile(other, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run("workload", "register", other, "--module", mod); err == nil || !strings.Contains(err.Error(), "describes another module") {
		t.Errorf("a manifest naming another module: %v", err)
	}
}
