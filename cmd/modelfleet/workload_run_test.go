package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `workload run` only parses flags: it refuses a missing --site or
// --manifest and hands the rest to app.OpenWorkloadRunner, whose refusal
// of a manifest names the file (app/workload_run_test.go tests the runner
// itself).
func TestWorkloadRunFlags(t *testing.T) {
	data := t.TempDir()
	t.Setenv("MODELFLEET_DATA_DIR", data)
	t.Setenv("MODELFLEET_SITE", "")
	t.Setenv("MODELFLEET_WORKLOAD_MANIFEST", "")
	other := filepath.Join(t.TempDir(), "workload.yaml")
	doc, err := os.ReadFile("../../examples/bearing-failure/workload/workload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte(strings.Replace(string(doc), "name: bearing-failure-line", "name: paint-shop", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"workload", "run", "--manifest", other}, "--site is required"},
		{[]string{"workload", "run", "--site", "site-1"}, "--manifest is required"},
		{[]string{"workload", "run", "--site", "site-1", "--manifest", other, "--listen", "127.0.0.1:0"}, other + `: workload paint-shop:1: this binary has no code for workload "paint-shop"`},
	} {
		root := newRoot()
		root.SetArgs(c.args)
		if err := root.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.args, err, c.want)
		}
	}
}
