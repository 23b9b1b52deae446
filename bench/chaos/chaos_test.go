package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet/internal/pgtest"
)

// TestChaosShort is `make chaos` made small for `make test`: 3 agents, 2
// releases, every kind of process killed at least once (gateway, worker,
// Temporal, an agent), an agent offline and a model file corrupted, with
// authentication on (trust.go), the last site's disk full at the second
// release (disk.go: root with CAP_SYS_ADMIN) and a workload runner per
// site as its own process, killed too (workloads.go); every invariant
// must hold.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos suite: starts real processes (run `make test` or `make chaos`)")
	}
	root, bin, temporal := binaries(t)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	r, err := run(ctx, options{
		bin: bin, temporal: temporal, sites: 3, releases: 2, killsEach: 1,
		interval: 2 * time.Second, releaseTimeout: 3 * time.Minute, maxDuration: 4 * time.Minute,
		example: filepath.Join(root, "examples", "bearing-failure"), dir: t.TempDir(), auth: true, diskFull: true, workloads: true,
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
	if r.enrolments != 3 || !r.auth {
		t.Errorf("auth %v, %d sites enrolled: want all 3 enrolled with join tokens", r.auth, r.enrolments)
	}
	if f := r.workloads; f == nil || f.published == 0 || f.decisions == 0 {
		t.Errorf("workload runners: %+v; want readings published and decided", f)
	}
	switch d := r.disk; {
	case d == nil:
		t.Error("the disk-full fault was not set up")
	case d.skipped != "" && os.Getenv("MODELFLEET_REQUIRE_DEPS") == "1":
		t.Errorf("disk full not injected: %s", d.skipped)
	case d.skipped != "":
		t.Logf("disk full not injected: %s", d.skipped)
	case !d.exercised || !d.converged:
		t.Errorf("disk full: exercised %v, converged after %v: %v", d.exercised, d.converged, d.problems)
	}
}

// TestChaosStoreShort is `make chaos-store` made small: three gateway
// replicas on one PostgreSQL behind a balancer; a replica killed, the
// database restarted mid-release, besides the rest of the chaos; sites
// enrolled with join tokens through the balancer; four more sites hosted
// in the fleet process (-fleet-sites), killed and restarted too.
func TestChaosStoreShort(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos suite: starts real processes (run `make test` or `make chaos-store`)")
	}
	root, bin, temporal := binaries(t)
	pg := pgtest.NeedServer(t)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	r, err := run(ctx, options{
		bin: bin, temporal: temporal, sites: 3, releases: 2, killsEach: 1,
		interval: 2 * time.Second, releaseTimeout: 3 * time.Minute, maxDuration: 4 * time.Minute,
		example: filepath.Join(root, "examples", "bearing-failure"), dir: t.TempDir(),
		store: "postgres", replicas: 3, pg: pg, auth: true,
		fleetSites: 4, fleetHeartbeat: 2 * time.Second,
	}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.broken(); err != nil {
		t.Fatal(err)
	}
	if r.kills[restartStore] < 1 || r.kills[killGateway] < 1 || r.replicas != 3 {
		t.Errorf("kills %v on %d replicas: want a replica killed and PostgreSQL restarted", r.kills, r.replicas)
	}
	// Enrolled through a balancer over three replicas: join tokens made at
	// one replica are redeemed at another (enrolments in the database).
	if r.enrolments != 3+4 || !r.auth || r.fleetSites != 4 {
		t.Errorf("auth %v, %d sites enrolled, %d in the fleet: want all 3+4 enrolled with join tokens", r.auth, r.enrolments, r.fleetSites)
	}
	if r.kills[killFleet] < 1 {
		t.Errorf("kills %v: want the fleet process killed", r.kills)
	}
}

// binaries are the repository's root, bin/modelfleet and the Temporal CLI
// (`make test` builds both first).
func binaries(t *testing.T) (root, bin, temporal string) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(root, "bin", "modelfleet")
	temporal = filepath.Join(root, "bin", "tools", "temporal")
	for _, p := range []string{bin, temporal} {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("MODELFLEET_REQUIRE_DEPS") == "1" {
				t.Fatalf("%s missing: `make test` builds it (make build tools)", p)
			}
			t.Skipf("%s missing: run `make build tools` first", p)
		}
	}
	return root, bin, temporal
}

func TestMain(m *testing.M) {
	// The fleet process (fleet.go) is this binary run with the hidden
	// command, as `go run ./bench/chaos` runs it.
	if len(os.Args) > 1 && os.Args[1] == fleetCommand {
		os.Exit(fleetMain(os.Args[2:]))
	}
	os.Exit(pgtest.Main(m))
}
