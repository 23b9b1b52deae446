package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	bearing "github.com/modelfleet/modelfleet/examples/bearing-failure/workload"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/workload"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// registerModule uploads code to the gateway and registers the sample
// manifest as version, naming the module.
func registerModule(t *testing.T, gw *Gateway, version string, code []byte) modelfleet.WorkloadRecord {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "examples", "bearing-failure", "workload", "workload.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	digest, err := workload.CheckModule(context.Background(), code)
	if err != nil && !strings.Contains(err.Error(), "ABI") {
		t.Fatal(err)
	}
	if digest == "" {
		sum := sha256.Sum256(code)
		digest = "sha256:" + hex.EncodeToString(sum[:])
	}
	named, err := spec.SetModuleDigest([]byte(strings.Replace(string(doc), `version: "1"`, `version: "`+version+`"`, 1)), digest)
	if err != nil {
		t.Fatal(err)
	}
	fc := &fleet.Client{BaseURL: gw.URL()}
	if err := fc.UploadWorkloadModule(context.Background(), digest, code); err != nil {
		t.Fatal(err)
	}
	rec, err := fc.RegisterWorkload(context.Background(), named)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestSiteRunsWorkloadModule: a release carrying a workload version whose
// code is a WebAssembly module (the example, built from source) makes the
// site download it from the gateway, keep it on disk and run it; a version
// whose module is not ABI v1 is refused with the reason while the module
// keeps deciding; after a restart with the module file altered on the
// site's disk, the site refuses it, reports why, and keeps running what it
// runs without it.
func TestSiteRunsWorkloadModule(t *testing.T) {
	dir := t.TempDir()
	vs := exampleVersions(t, dir, "1", "2", "3")
	gw, err := OpenGateway(GatewayConfig{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if _, err := gw.Directory.Put(modelfleet.Site{ID: "s1", TaskQueue: modelfleet.SiteTaskQueue("s1")}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "line.wasm")
	digest, err := workload.BuildModule(context.Background(), "", "../examples/bearing-failure/workload/module", out)
	if err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	w2 := registerModule(t, gw, "2", code)
	w3 := registerModule(t, gw, "3", []byte("\x00asm\x01\x00\x00\x00")) // valid WebAssembly, no ABI

	b, err := workload.StartBroker(workload.BrokerConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	siteDir := filepath.Join(dir, "site")
	start := func() (*workload.Supervisor, func()) {
		e, err := Open(Config{SiteID: "s1", DataDir: siteDir, Listen: "127.0.0.1:0", GatewayURL: gw.URL(), HeartbeatInterval: 200 * time.Millisecond, NoSignals: true})
		if err != nil {
			t.Fatal(err)
		}
		sup := workload.NewSupervisor(workload.SupervisorConfig{Site: "s1", Broker: b.URL(), Router: e.Record().RouterURL, HealthInterval: 100 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{}, 2)
		go func() { e.Run(ctx); done <- struct{}{} }()
		go func() { _ = e.RunWorkload(ctx, bearing.Code(), bearing.MustProgram(), sup); done <- struct{}{} }()
		return sup, func() { cancel(); <-done; <-done; e.Edge.Close() }
	}
	running := func(sup *workload.Supervisor, version string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if st := sup.Status(); st.Version == version && st.State == workload.StateRunning {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("workload runs %+v, want version %s", sup.Status(), version)
	}
	step := func(release string, v modelfleet.DesiredVersion, w *modelfleet.WorkloadRecord) {
		t.Helper()
		if _, err := gw.Directory.Step(modelfleet.StepRequest{Release: release, Model: "bearing-failure", New: v, Sites: []string{"s1"}, Workload: w}); err != nil {
			t.Fatal(err)
		}
	}
	finish := func(release string) {
		t.Helper()
		if _, err := gw.Directory.Finish(release, "bearing-failure", []string{"s1"}); err != nil {
			t.Fatal(err)
		}
	}

	sup, stop := start()
	step("release/bearing-failure/1", vs[0], nil)
	running(sup, "1") // the built-in reference
	finish("release/bearing-failure/1")
	step("release/bearing-failure/2", vs[1], &w2)
	running(sup, "2") // the module
	if p := awaitProgress(t, gw.Directory, "2"); len(p.Converged) != 1 {
		t.Fatalf("progress with the module = %+v", p)
	}
	finish("release/bearing-failure/2")
	kept := filepath.Join(siteDir, "workloads", "modules", "sha256", strings.TrimPrefix(digest, "sha256:"))
	if b, err := os.ReadFile(kept); err != nil || len(b) != len(code) {
		t.Fatalf("the module is not kept on the site's disk: %v", err)
	}

	step("release/bearing-failure/3", vs[2], &w3)
	p := awaitProgress(t, gw.Directory, "3")
	if len(p.Failed) != 1 || !strings.Contains(p.Failed[0].Reason, "does not implement ABI 1") {
		t.Fatalf("progress with a module without the ABI = %+v", p)
	}
	if st := sup.Status(); st.Version != "2" || st.State != workload.StateRunning {
		t.Fatalf("after a refused module the site runs %+v, want version 2", st)
	}
	if _, err := gw.Directory.Rollback("release/bearing-failure/3", "bearing-failure", []string{"s1"}, ""); err != nil {
		t.Fatal(err)
	}
	awaitProgress(t, gw.Directory, "2")
	stop()

	// Someone alters the module on the site's disk while the agent is down.
	altered, err := os.ReadFile(kept)
	if err != nil {
		t.Fatal(err)
	}
	altered[len(altered)/3] ^= 0x40
	if err := os.WriteFile(kept, altered, 0o644); err != nil {
		t.Fatal(err)
	}
	sup, stop = start()
	defer stop()
	running(sup, "1") // what the agent runs without a release: the module is refused
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := gw.Directory.Progress("bearing-failure", "2", []string{"s1"})
		if err == nil && len(p.Failed) == 1 && strings.Contains(p.Failed[0].Reason, "altered") {
			t.Logf("reported: %s", p.Failed[0].Reason)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the site did not report the altered module: %+v %v", p, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := sup.Status(); st.Version != "1" || st.State != workload.StateRunning {
		t.Fatalf("after refusing the altered module the site runs %+v", st)
	}
}
