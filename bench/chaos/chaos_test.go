package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestChaosShort is `make chaos` made small for `make test`: 3 agents, 2
// releases, every kind of process killed at least once (gateway, worker,
// Temporal, an agent), an agent offline and a model file corrupted; every
// invariant must hold.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos suite: starts real processes (run `make test` or `make chaos`)")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin", "modelfleet")
	temporal := filepath.Join(root, "bin", "tools", "temporal")
	for _, p := range []string{bin, temporal} {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("MODELFLEET_REQUIRE_DEPS") == "1" {
				t.Fatalf("%s missing: `make test` builds it (make build tools)", p)
			}
			t.Skipf("%s missing: run `make build tools` first", p)
		}
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	r, err := run(ctx, options{
		bin: bin, temporal: temporal, sites: 3, releases: 2, killsEach: 1,
		interval: 2 * time.Second, releaseTimeout: 3 * time.Minute, maxDuration: 4 * time.Minute,
		example: filepath.Join(root, "examples", "bearing-failure"), dir: t.TempDir(),
	}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.broken(); err != nil {
		t.Fatal(err)
	}
	for kind, n := range r.kills {
		if n < 1 {
			t.Errorf("no %s was killed: %v", kind, r.kills)
		}
	}
	if r.scores == 0 {
		t.Error("no score was checked: the observer saw no site serve")
	}
}
