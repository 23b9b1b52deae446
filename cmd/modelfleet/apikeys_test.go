package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/app"
	"github.com/modelfleet/modelfleet/orchestrator/orchestratortest"
)

// TestSiteAPIKeysCommands runs `modelfleet site api-keys` against a real
// gateway: the keys are hashed by the CLI, only hashes reach the desired
// state, and clear removes the scope.
func TestSiteAPIKeysCommands(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("MODELFLEET_DATA_DIR", filepath.Join(dir, "cli")) // no credentials of another stack
	t.Setenv("MODELFLEET_TOKEN", "")
	gw, err := app.OpenGateway(app.GatewayConfig{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway"), Orchestrator: &orchestratortest.Fake{}})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	for id, plant := range map[string]string{"s1": "a", "s2": "b"} {
		if _, err := gw.Directory.Put(modelfleet.Site{ID: id, TaskQueue: modelfleet.SiteTaskQueue(id), Labels: map[string]string{"plant": plant}}); err != nil {
			t.Fatal(err)
		}
	}
	const k1, k2 = "first-key-0123456789abcdef", "second-key-0123456789abcdef"
	keyFile := filepath.Join(dir, "keys")
	os.WriteFile(keyFile, []byte(k1+"\n\n  "+k2+"  \n"), 0o600)
	run := func(args ...string) (string, error) {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(append(args, "--gateway-url", gw.URL()))
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	desired := func(site string) modelfleet.Desired {
		ds, err := gw.Directory.Desired(context.Background(), site, -1)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	if out, err := run("site", "api-keys", "set", "--selector", "plant=a", "--model", "m", "--key-file", keyFile); err != nil {
		t.Fatalf("set: %v\n%s", err, out)
	}
	want := &modelfleet.APIKeys{Models: map[string]modelfleet.KeyHashes{"m": {SHA256: []string{modelfleet.HashAPIKey(k1), modelfleet.HashAPIKey(k2)}}}}
	ds := desired("s1")
	if !reflect.DeepEqual(ds.APIKeys, want) {
		t.Fatalf("s1 keys = %+v, want %+v", ds.APIKeys, want)
	}
	if desired("s2").APIKeys != nil {
		t.Error("the selector set keys at s2 (plant b)")
	}
	out, err := run("site", "api-keys", "show", "s1")
	if err != nil || !strings.Contains(out, modelfleet.HashAPIKey(k1)) || strings.Contains(out, k1) {
		t.Errorf("show: %v\n%s", err, out)
	}
	if out, err := run("site", "api-keys", "hash", "--key-file", keyFile); err != nil || out != modelfleet.HashAPIKey(k1)+"\n"+modelfleet.HashAPIKey(k2)+"\n" {
		t.Errorf("hash: %v\n%s", err, out)
	}
	if out, err := run("site", "api-keys", "clear", "s1", "--model", "m"); err != nil {
		t.Fatalf("clear: %v\n%s", err, out)
	}
	if got := desired("s1").APIKeys; got != nil {
		t.Errorf("after clear: %+v", got)
	}

	// Refused before anything is sent: a short key (never quoted back),
	// no keys, no sites, two ways of naming them.
	os.WriteFile(keyFile, []byte("short-key\n"), 0o600)
	for _, args := range [][]string{
		{"site", "api-keys", "set", "s1", "--key-file", keyFile},
		{"site", "api-keys", "set", "s1"},
		{"site", "api-keys", "set", "--key-file", filepath.Join(dir, "none")},
		{"site", "api-keys", "clear"},
		{"site", "api-keys", "clear", "s1", "--all"},
		{"site", "api-keys", "set", "s1", "--sha256", "not-a-hash"},
	} {
		if _, err := run(args...); err == nil || strings.Contains(err.Error(), "short-key") {
			t.Errorf("%q: %v, want a refusal that quotes no key", args, err)
		}
	}
	if got := desired("s1").APIKeys; got != nil {
		t.Errorf("refused commands changed the keys: %+v", got)
	}
}
