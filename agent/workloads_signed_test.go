package agent

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	bearing "github.com/modelfleet/modelfleet/examples/bearing-failure/workload"
	"github.com/modelfleet/modelfleet/workload"
)

// A site with pinned release keys runs a workload manifest only if a signed
// statement vouches for it: the model version's (a model release carrying
// it) or its own (a workload released alone). An unsigned one is refused,
// reported, and what ran keeps running.
func TestSiteRunsOnlySignedWorkloads(t *testing.T) {
	dir := t.TempDir()
	vs := exampleVersions(t, dir, "1")
	key, pub := releaseKey(t)
	keysFile := filepath.Join(dir, "release-keys.json")
	if err := saveTrust(keysFile, &modelfleet.Trust{Keys: []modelfleet.TrustedKey{pub}, Serial: 1}); err != nil {
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
	w2 := registerSample(t, gw.Directory, "2", "size: 16", "size: 8")
	w4 := registerSample(t, gw.Directory, "4", "size: 16", "size: 12")
	b, err := workload.StartBroker(workload.BrokerConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	e, err := Open(Config{SiteID: "s1", DataDir: filepath.Join(dir, "site"), Listen: "127.0.0.1:0", GatewayURL: gw.URL(), HeartbeatInterval: 200 * time.Millisecond, ReleaseKeysFile: keysFile})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Edge.Close()
	sup := workload.NewSupervisor(workload.SupervisorConfig{Site: "s1", Broker: b.URL(), Router: e.Record().RouterURL, HealthInterval: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { e.Run(ctx); done <- struct{}{} }()
	go func() { _ = e.RunWorkload(ctx, bearing.Code(), bearing.MustProgram(), sup); done <- struct{}{} }()
	defer func() { cancel(); <-done; <-done }()
	running := func(version string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if st := sup.Status(); st.Version == version && st.State == workload.StateRunning {
				return
			}
		}
		t.Fatalf("workload runs %+v, want version %s", sup.Status(), version)
	}
	fi, err := os.Stat(filepath.Join("..", "examples", "bearing-failure", "model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// Model version 1 released with workload 2: its statement names it.
	v1 := vs[0]
	st := modelfleet.NewReleaseStatement(v1.Digest, fi.Size(), modelfleet.ReleasePredicate{Model: "bearing-failure", Version: "1", Format: v1.Format, Features: v1.Features,
		Workload: &modelfleet.SignedWorkload{Name: w2.Name, Version: w2.Version, ManifestDigest: w2.Digest}})
	if v1.Statement, err = modelfleet.SignStatement(st, []ed25519.PrivateKey{key}); err != nil {
		t.Fatal(err)
	}
	v1.Size = fi.Size()
	if _, err := gw.Directory.Step(modelfleet.StepRequest{Release: "release/bearing-failure/1", Model: "bearing-failure", New: v1, Sites: []string{"s1"}, Workload: &w2}); err != nil {
		t.Fatal(err)
	}
	running("2")
	if _, err := gw.Directory.Finish("release/bearing-failure/1", "bearing-failure", []string{"s1"}); err != nil {
		t.Fatal(err)
	}

	// Workload 4 released alone, unsigned: refused, 2 keeps running.
	wr := modelfleet.WorkloadReleaseWorkflowID("bearing-failure", w4.Ref())
	if _, err := gw.Directory.Step(modelfleet.StepRequest{Release: wr, Model: "bearing-failure", Sites: []string{"s1"}, Workload: &w4}); err != nil {
		t.Fatal(err)
	}
	p := awaitProgress(t, gw.Directory, "")
	if len(p.Failed) != 1 || !strings.Contains(p.Failed[0].Reason, "no signed statement") {
		t.Fatalf("progress of an unsigned workload release = %+v", p)
	}
	if st := sup.Status(); st.Version != "2" {
		t.Fatalf("after a refused workload the site runs %+v, want version 2", st)
	}
	if _, err := gw.Directory.Rollback(wr, "bearing-failure", []string{"s1"}, ""); err != nil {
		t.Fatal(err)
	}

	// Signed, it runs.
	env, err := modelfleet.SignWorkloadStatement(modelfleet.NewWorkloadStatement(w4, wr, time.Now()), []ed25519.PrivateKey{key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gw.Directory.Step(modelfleet.StepRequest{Release: wr, Model: "bearing-failure", Sites: []string{"s1"}, Workload: &w4, WorkloadStatement: env}); err != nil {
		t.Fatal(err)
	}
	running("4")
}
