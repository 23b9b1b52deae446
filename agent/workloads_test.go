package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	bearing "github.com/modelfleet/modelfleet/examples/bearing-failure/workload"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/workload"
)

// TestReleaseSwapsWorkloadThroughDesiredState runs a real directory,
// registry, edge agent, MQTT broker and the sample workload under its
// supervisor. A step that carries workload version 2 swaps it in at the
// site; one whose manifest the agent's code cannot serve is reported failed
// while version 2 keeps running; rolling that back changes nothing at the
// site, rolling back the first release returns to the built-in version.
func TestReleaseSwapsWorkloadThroughDesiredState(t *testing.T) {
	dir := t.TempDir()
	vs := exampleVersions(t, dir, "1", "2", "3")
	v1, v2, v3 := vs[0], vs[1], vs[2]

	gw, err := OpenGateway(GatewayConfig{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if _, err := gw.Directory.Put(modelfleet.Site{ID: "s1", TaskQueue: modelfleet.SiteTaskQueue("s1")}); err != nil {
		t.Fatal(err)
	}
	w2 := registerSample(t, gw.Directory, "2", "size: 16", "size: 8")
	w3 := registerSample(t, gw.Directory, "3", "{name: load_pct,           unit", "{name: load_ratio,         unit")

	b, err := workload.StartBroker(workload.BrokerConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	e, err := Open(Config{SiteID: "s1", DataDir: filepath.Join(dir, "site"), Listen: "127.0.0.1:0", GatewayURL: gw.URL(), HeartbeatInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Edge.Close()
	sup := workload.NewSupervisor(workload.SupervisorConfig{Site: "s1", Broker: b.URL(), Router: e.Record().RouterURL, HealthInterval: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { e.Run(ctx); done <- struct{}{} }()
	go func() {
		if err := e.RunWorkload(ctx, bearing.Code(), bearing.MustProgram(), sup); err != nil {
			t.Error(err)
		}
		done <- struct{}{}
	}()
	defer func() { cancel(); <-done; <-done }()

	step := func(release string, v modelfleet.DesiredVersion, w *modelfleet.WorkloadRecord) {
		t.Helper()
		if _, err := gw.Directory.Step(modelfleet.StepRequest{Release: release, Model: "bearing-failure", New: v, Sites: []string{"s1"}, Workload: w}); err != nil {
			t.Fatal(err)
		}
	}
	running := func(version string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if st := sup.Status(); st.Version == version && st.State == workload.StateRunning {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("workload runs %+v, want version %s", sup.Status(), version)
	}

	step("release/bearing-failure/1", v1, nil)
	running("1") // the built-in version, once the model is served
	if err := e.RunWorkload(ctx, bearing.Code(), bearing.MustProgram(), sup); err == nil || !strings.Contains(err.Error(), "already hosts") {
		t.Errorf("a second workload at the site: %v, want it refused", err)
	}
	if _, err := gw.Directory.Finish("release/bearing-failure/1", "bearing-failure", []string{"s1"}); err != nil {
		t.Fatal(err)
	}

	step("release/bearing-failure/2", v2, &w2)
	running("2")
	p := awaitProgress(t, gw.Directory, "2")
	if len(p.Converged) != 1 {
		t.Fatalf("progress of the release with workload 2 = %+v", p)
	}
	if _, err := gw.Directory.Finish("release/bearing-failure/2", "bearing-failure", []string{"s1"}); err != nil {
		t.Fatal(err)
	}

	// Workload 3 renames a feature: the agent's code does not write it, so
	// the site refuses it, reports why, and keeps running version 2.
	step("release/bearing-failure/3", v3, &w3)
	p = awaitProgress(t, gw.Directory, "3")
	if len(p.Failed) != 1 || !strings.Contains(p.Failed[0].Reason, "bearing-failure-line:3") || !strings.Contains(p.Failed[0].Reason, "load_ratio") {
		t.Fatalf("progress with an unservable workload = %+v", p)
	}
	if st := sup.Status(); st.Version != "2" || st.State != workload.StateRunning {
		t.Fatalf("after a refused workload the site runs %+v, want version 2", st)
	}
	if _, err := gw.Directory.Rollback("release/bearing-failure/3", "bearing-failure", []string{"s1"}, ""); err != nil {
		t.Fatal(err)
	}
	p = awaitProgress(t, gw.Directory, "2")
	if len(p.Converged) != 1 {
		t.Fatalf("after rollback = %+v", p)
	}
	running("2")

	// A workload-only release (no model version): the site swaps to
	// workload 4 beside the model version it serves, and a rollback
	// brings 2 back, the model untouched throughout.
	w4 := registerSample(t, gw.Directory, "4", "size: 16", "size: 12")
	wr := modelfleet.WorkloadReleaseWorkflowID("bearing-failure", w4.Ref())
	step(wr, modelfleet.DesiredVersion{}, &w4)
	running("4")
	if p := awaitProgress(t, gw.Directory, ""); len(p.Converged) != 1 {
		t.Fatalf("progress of the workload-only release = %+v", p)
	}
	if ds, _ := gw.Directory.Desired(ctx, "s1", -1); modelfleet.SplitString(ds.Models["bearing-failure"].Versions) != "2:100" {
		t.Fatalf("model during the workload-only release = %+v", ds.Models["bearing-failure"])
	}
	if _, err := gw.Directory.Rollback(wr, "bearing-failure", []string{"s1"}, ""); err != nil {
		t.Fatal(err)
	}
	running("2")
}

// A workload started after the site applied a revision that carries a
// workload version runs that version, not the built-in one: the pull loop
// applies the revision it holds to a workload that joins later.
func TestWorkloadJoiningLaterRunsTheDesiredVersion(t *testing.T) {
	dir := t.TempDir()
	v1 := exampleVersions(t, dir, "1")[0]
	gw, err := OpenGateway(GatewayConfig{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if _, err := gw.Directory.Put(modelfleet.Site{ID: "s1", TaskQueue: modelfleet.SiteTaskQueue("s1")}); err != nil {
		t.Fatal(err)
	}
	w2 := registerSample(t, gw.Directory, "2", "size: 16", "size: 8")
	if _, err := gw.Directory.Step(modelfleet.StepRequest{Release: "release/bearing-failure/1", Model: "bearing-failure", New: v1, Sites: []string{"s1"}, Workload: &w2}); err != nil {
		t.Fatal(err)
	}
	b, err := workload.StartBroker(workload.BrokerConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	e, err := Open(Config{SiteID: "s1", DataDir: filepath.Join(dir, "site"), Listen: "127.0.0.1:0", GatewayURL: gw.URL(), HeartbeatInterval: 200 * time.Millisecond, NoSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Edge.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	defer func() { cancel(); <-done; <-done }()
	go func() { e.Run(ctx); done <- struct{}{} }()
	waitServing(t, e, "1") // the revision is applied before the workload joins

	sup := workload.NewSupervisor(workload.SupervisorConfig{Site: "s1", Broker: b.URL(), Router: e.Record().RouterURL, HealthInterval: 100 * time.Millisecond})
	go func() { _ = e.RunWorkload(ctx, bearing.Code(), bearing.MustProgram(), sup); done <- struct{}{} }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st := sup.Status(); st.Version == "2" && st.State == workload.StateRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workload runs %+v, want the desired version 2", sup.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// registerSample registers the sample manifest as version, with one
// replacement applied.
func registerSample(t *testing.T, d *fleet.Directory, version, old, new string) modelfleet.WorkloadRecord {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "examples", "bearing-failure", "workload", "workload.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(doc), `version: "1"`, `version: "`+version+`"`, 1)
	if !strings.Contains(s, old) {
		t.Fatalf("sample manifest has no %q", old)
	}
	rec, _, err := d.RegisterWorkload([]byte(strings.Replace(s, old, new, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// awaitProgress waits until s1 has reported on its latest desired revision.
func awaitProgress(t *testing.T, d *fleet.Directory, version string) modelfleet.Progress {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := d.Progress("bearing-failure", version, []string{"s1"})
		if err == nil && len(p.Pending) == 0 {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("progress = %+v, %v; s1 never reported", p, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
