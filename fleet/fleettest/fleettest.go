// Package fleettest is the conformance suite every fleet.Store passes: the
// same tests, unchanged, against the directory on bbolt and on PostgreSQL.
package fleettest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/signals"
)

// Open returns a new, empty directory, closed at t's cleanup.
type Open func(t *testing.T) *fleet.Directory

// Run runs the conformance suite against the directories open makes.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		run  func(*testing.T, *fleet.Directory)
	}{
		{"Sites", testSites},
		{"StepsAndLeases", testStepsAndLeases},
		{"UnknownSiteChangesNothing", testUnknownSiteChangesNothing},
		{"LongPollWakes", testLongPollWakes},
		{"Revision", testRevision},
		{"AgentPoll", testAgentPoll},
		{"ReportAndProgress", testReportAndProgress},
		{"ProgressOfEachSite", testProgressOfEachSite},
		{"Policies", testPolicies},
		{"Baselines", testBaselines},
		{"Workloads", testWorkloads},
		{"ConcurrentStepsOneLease", testConcurrentSteps},
		{"MonitorState", testMonitorState},
		{"MonitorRestart", testMonitorRestart},
		{"MonitorReplicas", testMonitorReplicas},
		{"MonitorWriteFaults", testMonitorWriteFaults},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t)) })
	}
}

func put(t *testing.T, d *fleet.Directory, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := d.Put(modelfleet.Site{ID: id, TaskQueue: modelfleet.SiteTaskQueue(id)}); err != nil {
			t.Fatal(err)
		}
	}
}

// Version is a desired version v at weight w.
func Version(v string, w int) modelfleet.DesiredVersion {
	return modelfleet.DesiredVersion{Version: v, Digest: "sha256:" + strings.Repeat(v, 64)[:64], Format: "lightgbm", ArtifactURL: "http://r/" + v, Weight: w}
}

func desired(t *testing.T, d *fleet.Directory, site string) modelfleet.Desired {
	t.Helper()
	ds, err := d.Desired(context.Background(), site, -1)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func testSites(t *testing.T, d *fleet.Directory) {
	put(t, d, "b", "a", "B")
	sites, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range sites {
		ids = append(ids, s.ID)
	}
	if got, want := strings.Join(ids, ","), "B,a,b"; got != want {
		t.Errorf("list = %s, want %s (byte order)", got, want)
	}
	if _, err := d.Get("nope"); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Errorf("get unknown: %v, want not found", err)
	}
	if _, err := d.Put(modelfleet.Site{ID: "a", TaskQueue: modelfleet.SiteTaskQueue("a"), Labels: map[string]string{"ring": "canary"}}); err != nil {
		t.Fatal(err)
	}
	s, err := d.Put(modelfleet.Site{ID: "a", TaskQueue: modelfleet.SiteTaskQueue("a"), RouterURL: "http://10.0.0.9:9001"})
	if err != nil || s.Labels["ring"] != "canary" {
		t.Errorf("update without labels = %+v, %v; want the labels kept", s, err)
	}
	if s, _ := d.Get("a"); s.Labels["ring"] != "canary" || s.RouterURL != "http://10.0.0.9:9001" || s.LastSeen == "" {
		t.Errorf("stored = %+v", s)
	}
	if _, err := d.Put(modelfleet.Site{ID: "bad id/"}); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("bad id: %v, want invalid", err)
	}
	if ds := desired(t, d, "a"); ds.Revision != 0 || len(ds.Models) != 0 || ds.Site != "a" {
		t.Errorf("desired before any step = %+v", ds)
	}
}

func testStepsAndLeases(t *testing.T, d *fleet.Directory) {
	put(t, d, "s1", "s2")
	sites := []string{"s1", "s2"}
	if _, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: "m", New: Version("1", 100), Sites: sites}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Finish("r1", "m", sites); err != nil {
		t.Fatal(err)
	}
	res, err := d.Step(modelfleet.StepRequest{Release: "r2", Model: "m", New: Version("2", 10), Sites: sites})
	if err != nil || res.Changed != 2 {
		t.Fatalf("step = %+v, %v; want 2 changed", res, err)
	}
	ds := desired(t, d, "s1")
	if got, want := modelfleet.SplitString(ds.Models["m"].Versions), "2:10,1:90"; got != want || ds.Revision != 2 || ds.Models["m"].Release != "r2" {
		t.Errorf("desired = %s rev %d lease %q, want %s rev 2 lease r2", got, ds.Revision, ds.Models["m"].Release, want)
	}
	// A retried step changes nothing.
	res, err = d.Step(modelfleet.StepRequest{Release: "r2", Model: "m", New: Version("2", 10), Sites: sites})
	if err != nil || res.Changed != 0 || res.Unchanged != 2 || desired(t, d, "s1").Revision != 2 {
		t.Errorf("retried step = %+v, %v; want unchanged", res, err)
	}
	// Another release meets the lease.
	res, err = d.Step(modelfleet.StepRequest{Release: "r3", Model: "m", New: Version("3", 50), Sites: sites})
	if err != nil || len(res.Conflicts) != 2 || res.Conflicts[0].Holder != "r2" {
		t.Errorf("step of another release = %+v, %v; want 2 conflicts held by r2", res, err)
	}
	if res, err := d.Rollback("r2", "m", sites, ""); err != nil || res.Changed != 2 {
		t.Fatalf("rollback = %+v, %v", res, err)
	}
	ds = desired(t, d, "s2")
	if got := modelfleet.SplitString(ds.Models["m"].Versions); got != "1:100" || ds.Revision != 3 || ds.Models["m"].Release != "" {
		t.Errorf("after rollback = %s rev %d lease %q; want 1:100 rev 3 free", got, ds.Revision, ds.Models["m"].Release)
	}
	// Bad input is refused whole.
	if _, err := d.Step(modelfleet.StepRequest{Release: "r4", Model: "m", New: Version("4", 101), Sites: sites}); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("weight 101: %v, want invalid", err)
	}
	if desired(t, d, "s1").Revision != 3 {
		t.Error("a refused step changed the revision")
	}
}

func testUnknownSiteChangesNothing(t *testing.T, d *fleet.Directory) {
	put(t, d, "s1")
	_, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: "m", New: Version("1", 100), Sites: []string{"s1", "ghost"}})
	if modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Fatalf("step with an unknown site: %v, want not found", err)
	}
	if ds := desired(t, d, "s1"); ds.Revision != 0 || len(ds.Models) != 0 {
		t.Errorf("s1 = %+v; the failed step was half applied", ds)
	}
	if _, err := d.Desired(context.Background(), "ghost", -1); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Errorf("desired of unknown: %v", err)
	}
}

func testLongPollWakes(t *testing.T, d *fleet.Directory) {
	put(t, d, "s1")
	type answer struct {
		ds        modelfleet.Desired
		waitedOut bool
	}
	got := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ds, _ := d.Desired(ctx, "s1", 0)
		got <- answer{ds, ctx.Err() != nil}
	}()
	if _, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: "m", New: Version("1", 100), Sites: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	if a := <-got; a.ds.Revision != 1 || a.waitedOut {
		t.Errorf("long poll returned revision %d (having waited out its 20 s: %v), want 1 when the step woke it", a.ds.Revision, a.waitedOut)
	}
	// Nothing new: the poll waits out its context.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if ds, err := d.Desired(ctx, "s1", 1); err != nil || ds.Revision != 1 {
		t.Errorf("idle long poll = %+v, %v", ds, err)
	}
	// A caller that goes away mid-wait gets its context's error.
	gone, leave := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, leave)
	if _, err := d.Desired(gone, "s1", 1); !errors.Is(err, context.Canceled) {
		t.Errorf("a long poll whose caller left = %v, want %v", err, context.Canceled)
	}
	// No wait at all (GET .../desired without ?wait): a context already
	// done still reads the current state.
	done, cancelDone := context.WithTimeout(context.Background(), 0)
	defer cancelDone()
	if ds, err := d.Desired(done, "s1", -1); err != nil || ds.Revision != 1 {
		t.Errorf("read without a wait = %+v, %v", ds, err)
	}
}

// Revision is the desired state's, read alone: it follows every change
// (and only those) as Desired does.
func testRevision(t *testing.T, d *fleet.Directory) {
	ctx := context.Background()
	if _, err := d.Revision(ctx, "ghost"); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Errorf("revision of an unknown site: %v, want not found", err)
	}
	put(t, d, "s1", "s2")
	check := func(when string, want int64) {
		t.Helper()
		for _, s := range []string{"s1", "s2"} {
			rev, err := d.Revision(ctx, s)
			if ds := desired(t, d, s); err != nil || rev != want || rev != ds.Revision {
				t.Errorf("%s: revision of %s = %d, %v; want %d (desired state's %d)", when, s, rev, err, want, ds.Revision)
			}
		}
	}
	check("before any step", 0)
	sites := []string{"s1", "s2"}
	steps := []struct {
		what string
		run  func() (modelfleet.StepResult, error)
		want int64
	}{
		{"a step", func() (modelfleet.StepResult, error) {
			return d.Step(modelfleet.StepRequest{Release: "r1", Model: "m", New: Version("1", 100), Sites: sites})
		}, 1},
		{"the step retried", func() (modelfleet.StepResult, error) {
			return d.Step(modelfleet.StepRequest{Release: "r1", Model: "m", New: Version("1", 100), Sites: sites})
		}, 1},
		{"finish", func() (modelfleet.StepResult, error) { return d.Finish("r1", "m", sites) }, 1},
		{"a canary step", func() (modelfleet.StepResult, error) {
			return d.Step(modelfleet.StepRequest{Release: "r2", Model: "m", New: Version("2", 10), Sites: sites})
		}, 2},
		{"the next step", func() (modelfleet.StepResult, error) {
			return d.Step(modelfleet.StepRequest{Release: "r2", Model: "m", New: Version("2", 50), Sites: sites})
		}, 3},
		{"rollback", func() (modelfleet.StepResult, error) { return d.Rollback("r2", "m", sites, "") }, 4},
	}
	for _, st := range steps {
		if _, err := st.run(); err != nil {
			t.Fatalf("%s: %v", st.what, err)
		}
		check("after "+st.what, st.want)
	}
}

// testAgentPoll: an agent's poll is answered with the document as the
// store keeps it (fleet.Client.AgentDesired); it must say what Desired
// says, before the first step and after each.
func testAgentPoll(t *testing.T, d *fleet.Directory) {
	ctx := context.Background()
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	c := &fleet.Client{BaseURL: srv.URL}
	if _, _, err := c.AgentDesired(ctx, "ghost", -1, 0, "", nil); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Errorf("an unknown site's poll: %v, want not found", err)
	}
	put(t, d, "s1")
	// An agent of before statements were sent once asks with agentKeys
	// alone, and gets each statement in its version.
	older := func() (modelfleet.Desired, error) {
		var ds modelfleet.Desired
		resp, err := http.Get(srv.URL + "/api/sites/s1/desired?after=-1&agentKeys=")
		if err != nil {
			return ds, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return ds, fmt.Errorf("%s", resp.Status)
		}
		return ds, json.NewDecoder(resp.Body).Decode(&ds)
	}
	check := func(when string) {
		t.Helper()
		want := desired(t, d, "s1")
		got, _, err := c.AgentDesired(ctx, "s1", -1, 0, "", nil)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the agent's poll says %+v, %v; Desired says %+v", when, got, err, want)
		}
		if got, err := older(); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: an older agent's poll says %+v, %v; Desired says %+v", when, got, err, want)
		}
	}
	check("before any step")
	signed := func(v modelfleet.DesiredVersion) modelfleet.DesiredVersion {
		v.Statement = &modelfleet.Envelope{PayloadType: "application/vnd.in-toto+json", Payload: []byte(`{"_type":"<&>\u2028","v":"` + v.Version + `"}`), Signatures: []modelfleet.Signature{{KeyID: "k", Sig: []byte{0, 1, 2, 255}}}}
		return v
	}
	v1, v2 := signed(Version("1", 100)), signed(Version("2", 10))
	if _, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: "m", New: v1, Sites: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	check("after a step")
	if got := desired(t, d, "s1").Models["m"].Versions; len(got) != 1 || !reflect.DeepEqual(got[0].Statement, v1.Statement) || got[0].StatementRef != "" {
		t.Errorf("after a step, Desired says %+v: want version 1 with its statement in it", got)
	}
	if _, err := d.Finish("r1", "m", []string{"s1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Step(modelfleet.StepRequest{Release: "r2", Model: "m", New: v2, Sites: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	check("after a canary step") // both statements in the split, the first in Previous too
	if dm := desired(t, d, "s1").Models["m"]; len(dm.Versions) != 2 || len(dm.Previous) != 1 || dm.Versions[0].Statement == nil || dm.Versions[1].Statement == nil || !reflect.DeepEqual(dm.Previous[0].Statement, v1.Statement) {
		t.Errorf("after a canary step, Desired says %+v: want both versions with their statements", dm)
	}
	if _, err := d.Rollback("r2", "m", []string{"s1"}, ""); err != nil {
		t.Fatal(err)
	}
	check("after a rollback")
	if got := desired(t, d, "s1").Models["m"].Versions; len(got) != 1 || !reflect.DeepEqual(got[0].Statement, v1.Statement) {
		t.Errorf("after a rollback, Desired says %+v: want version 1 with its statement", got)
	}
	if _, err := d.Step(modelfleet.StepRequest{Release: "r3", Model: "m", New: Version("2", 10), Sites: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	check("after an unsigned canary step")
	if got, _, err := c.AgentDesired(ctx, "s1", 1, time.Second, "", nil); err != nil || got.Revision != desired(t, d, "s1").Revision {
		t.Errorf("a poll after revision 1 answers revision %d, %v; want the latest", got.Revision, err)
	}
}

func testReportAndProgress(t *testing.T, d *fleet.Directory) {
	rec := &modelfleet.Site{ID: "s1", TaskQueue: modelfleet.SiteTaskQueue("s1"), RouterURL: "http://10.0.0.1:9001"}
	if err := d.ReportActual(modelfleet.Actual{Site: "s1", SiteRecord: rec}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get("s1"); err != nil {
		t.Fatalf("the first report did not register the site: %v", err)
	}
	if err := d.ReportActual(modelfleet.Actual{Site: "ghost"}); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Errorf("report of an unknown site without record: %v", err)
	}
	bad := &modelfleet.Site{ID: "other", TaskQueue: "x"}
	if err := d.ReportActual(modelfleet.Actual{Site: "s2", SiteRecord: bad}); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("mismatched record: %v", err)
	}
	if _, err := d.Get("s2"); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Error("a refused report registered its site")
	}
	put(t, d, "s2")
	sites := []string{"s1", "s2"}
	if _, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: "m", New: Version("1", 100), Sites: sites}); err != nil {
		t.Fatal(err)
	}
	served := map[string]modelfleet.ActualModel{"m": {Versions: []modelfleet.ServedVersion{{Version: "1", Requests: 10, Errors: 1}}}}
	if err := d.ReportActual(modelfleet.Actual{Site: "s1", Revision: 1, Models: served}); err != nil {
		t.Fatal(err)
	}
	p, err := d.Progress("m", "1", sites)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Converged, ",") != "s1" || strings.Join(p.Pending, ",") != "s2" || p.Requests != 10 || p.Errors != 1 {
		t.Errorf("progress = %+v; want s1 converged with 10 requests, s2 pending", p)
	}
	pairs, err := d.Pairings("m", sites)
	if err != nil || len(pairs) != 2 || pairs[1].Site != "s2" || modelfleet.SplitString(pairs[0].Versions) != "1:100" {
		t.Errorf("pairings = %+v, %v", pairs, err)
	}
}

// Progress classifies each site from its report of the revision it
// applied, that report's entry for the model and its workloads, and adds
// up the figures of the converged sites' entries only.
func testProgressOfEachSite(t *testing.T, d *fleet.Directory) {
	const model = "bearing-failure"
	w, _, err := d.RegisterWorkload(manifest(t, "1"))
	if err != nil {
		t.Fatal(err)
	}
	sites := []string{"behind", "failed", "other-failed", "ahead", "wl-pending", "wl-failed", "wl-done", "never"}
	put(t, d, sites...)
	withWorkload := []string{"wl-pending", "wl-failed", "wl-done"}
	if _, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: model, New: Version("1", 100), Sites: sites[:4]}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: model, New: Version("1", 100), Sites: withWorkload, Workload: &w}); err != nil {
		t.Fatal(err)
	}
	served := func(requests, errs int64) []modelfleet.ServedVersion {
		latency := make([]int64, len(modelfleet.LatencyBuckets)+1)
		latency[0] = requests
		return []modelfleet.ServedVersion{{Version: "1", Weight: 100, Requests: requests, Errors: errs, Latency: latency}}
	}
	running := func(version, failure string) map[string]modelfleet.ActualWorkload {
		return map[string]modelfleet.ActualWorkload{w.Name: {Version: version, Model: model, Error: failure}}
	}
	reports := []modelfleet.Actual{
		// Behind: pending, whatever its report of the revision before says.
		{Site: "behind", Revision: 0, Models: map[string]modelfleet.ActualModel{model: {Versions: served(1000, 1000), Error: "an older failure"}}},
		{Site: "failed", Revision: 1, Models: map[string]modelfleet.ActualModel{model: {Versions: served(1000, 1000), Error: "disk full"}}},
		{Site: "other-failed", Revision: 1, Models: map[string]modelfleet.ActualModel{
			model: {Versions: served(10, 1)}, "other": {Versions: served(1000, 1000), Error: "not this model"}}},
		{Site: "ahead", Revision: 5, Models: map[string]modelfleet.ActualModel{model: {Versions: served(20, 2)}}},
		{Site: "wl-pending", Revision: 1, Models: map[string]modelfleet.ActualModel{model: {Versions: served(1000, 1000)}}, Workloads: running("0", "")},
		{Site: "wl-failed", Revision: 1, Models: map[string]modelfleet.ActualModel{model: {Versions: served(1000, 1000)}}, Workloads: running("1", "crashed")},
		{Site: "wl-done", Revision: 1, Models: map[string]modelfleet.ActualModel{model: {Versions: served(30, 3)}}, Workloads: running("1", "")},
	}
	for _, a := range reports {
		if err := d.ReportActual(a); err != nil {
			t.Fatal(err)
		}
	}
	// Listed in another order than registered: the answer keeps it.
	listed := []string{"wl-done", "never", "wl-pending", "behind", "ahead", "wl-failed", "failed", "other-failed"}
	p, err := d.Progress(model, "1", listed)
	if err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, f := range p.Failed {
		failed = append(failed, f.Site+": "+f.Reason)
	}
	got := fmt.Sprintf("converged %s; pending %s; failed %s", strings.Join(p.Converged, ","), strings.Join(p.Pending, ","), strings.Join(failed, "; "))
	want := "converged wl-done,never,ahead,other-failed; pending wl-pending,behind; failed wl-failed: workload bearing-failure-line:1: crashed; failed: disk full"
	if got != want {
		t.Errorf("progress:\n got %s\nwant %s", got, want)
	}
	if p.Requests != 60 || p.Errors != 6 || p.Counters.Sites != 4 || p.Counters.Requests != 60 || p.Counters.Latency[0] != 60 {
		t.Errorf("figures = %d requests, %d errors, counters %+v; want the converged sites' 60 and 6", p.Requests, p.Errors, p.Counters)
	}
}

func testPolicies(t *testing.T, d *fleet.Directory) {
	if _, custom, err := d.Policy("m"); err != nil || custom {
		t.Errorf("policy of a model without one: custom %v, %v", custom, err)
	}
	if _, err := d.PutPolicy("m", []byte("waves: [")); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("bad policy: %v, want invalid", err)
	}
	if _, custom, _ := d.Policy("m"); custom {
		t.Error("a bad policy was stored")
	}
	if _, err := d.PutPolicy("m", []byte("apiVersion: modelfleet/v1\nwaves:\n  - name: all\n    steps: [100]\n")); err != nil {
		t.Fatal(err)
	}
	if _, custom, err := d.Policy("m"); err != nil || !custom {
		t.Errorf("stored policy: custom %v, %v", custom, err)
	}
}

func testBaselines(t *testing.T, d *fleet.Directory) {
	if _, err := d.Baseline("m", "1"); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Errorf("missing baseline: %v", err)
	}
	ds := &inference.Dataset{Features: []string{"a", "b"}}
	for i := range 50 {
		ds.X = append(ds.X, []float64{float64(i), float64(i % 7)})
	}
	b, err := signals.BuildBaseline(ds, 10)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := d.PutBaseline("m", "1", b)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := d.Baseline("m", "1")
	if err != nil || rec.Digest != digest {
		t.Errorf("baseline = %s, %v; want digest %s", rec.Digest, err, digest)
	}
}

// manifest reads the example workload manifest at version.
func manifest(t *testing.T, version string) []byte {
	t.Helper()
	dir, _ := os.Getwd()
	for ; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil || dir == filepath.Dir(dir) {
			break
		}
	}
	doc, err := os.ReadFile(filepath.Join(dir, "examples/bearing-failure/workload/workload.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.Replace(string(doc), `version: "1"`, `version: "`+version+`"`, 1))
}

func testWorkloads(t *testing.T, d *fleet.Directory) {
	for _, v := range []string{"2", "10", "1"} {
		if _, created, err := d.RegisterWorkload(manifest(t, v)); err != nil || !created {
			t.Fatalf("register %s = %v, %v", v, created, err)
		}
	}
	if _, created, err := d.RegisterWorkload(manifest(t, "1")); err != nil || created {
		t.Errorf("same bytes again = %v, %v; want a no-op", created, err)
	}
	if _, _, err := d.RegisterWorkload(append(manifest(t, "1"), "# retuned\n"...)); modelfleet.ErrorCode(err) != modelfleet.ECONFLICT {
		t.Errorf("other bytes, same version: %v, want conflict", err)
	}
	list, err := d.Workloads()
	var vs []string
	for _, r := range list {
		vs = append(vs, r.Version)
		if r.Manifest != "" {
			t.Error("the list carries manifests")
		}
	}
	if err != nil || strings.Join(vs, ",") != "1,10,2" {
		t.Errorf("list = %v, %v; want 1,10,2 (byte order)", vs, err)
	}
	rec, err := d.Workload("bearing-failure-line", "10")
	if err != nil || rec.Manifest == "" {
		t.Errorf("workload = %+v, %v", rec, err)
	}
	if _, err := d.Workload("bearing-failure-line", "9"); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Errorf("unknown version: %v", err)
	}
}

// Releases racing for the same sites: each site's lease goes to exactly
// one, every step is counted once, and the revisions add up.
func testConcurrentSteps(t *testing.T, d *fleet.Directory) {
	sites := []string{"c1", "c2", "c3", "c4"}
	put(t, d, sites...)
	const releases = 6
	var wg sync.WaitGroup
	results := make([]modelfleet.StepResult, releases)
	errs := make([]error, releases)
	for i := range releases {
		wg.Go(func() {
			// Each release lists the sites in another order: row locks
			// taken in request order would deadlock.
			order := append(append([]string{}, sites[i%len(sites):]...), sites[:i%len(sites)]...)
			results[i], errs[i] = d.Step(modelfleet.StepRequest{Release: fmt.Sprintf("r%d", i), Model: "m", New: Version("1", 100), Sites: order})
		})
	}
	wg.Wait()
	changed := 0
	for i := range releases {
		if errs[i] != nil {
			t.Fatalf("release %d: %v", i, errs[i])
		}
		changed += results[i].Changed
	}
	if changed != len(sites) {
		t.Errorf("%d sites changed in all, want %d (one lease per site)", changed, len(sites))
	}
	for _, s := range sites {
		ds := desired(t, d, s)
		if ds.Revision != 1 || ds.Models["m"].Release == "" {
			t.Errorf("%s = rev %d lease %q; want rev 1 held by one release", s, ds.Revision, ds.Models["m"].Release)
		}
	}
}
