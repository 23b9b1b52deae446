package fleet

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

func mustOpen(tb testing.TB, sites ...string) *Directory {
	tb.Helper()
	d, err := Open(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	for _, id := range sites {
		if _, err := d.Put(modelfleet.Site{ID: id, TaskQueue: modelfleet.SiteTaskQueue(id)}); err != nil {
			tb.Fatal(err)
		}
	}
	return d
}

func version(v string, w int) modelfleet.DesiredVersion {
	return modelfleet.DesiredVersion{Version: v, Digest: "sha256:" + strings.Repeat(v, 64)[:64], Format: "lightgbm", ArtifactURL: "http://r/" + v, Weight: w}
}

func desired(t *testing.T, d *Directory, site string) modelfleet.Desired {
	t.Helper()
	ds, err := d.Desired(context.Background(), site, -1)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestStepSplitsTrafficAndRollbackRestores(t *testing.T) {
	d := mustOpen(t, "s1", "s2")
	// Version 1 is what the sites serve before the release under test.
	if _, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: "m", New: version("1", 100), Sites: []string{"s1", "s2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Finish("r1", "m", []string{"s1", "s2"}); err != nil {
		t.Fatal(err)
	}
	res, err := d.Step(modelfleet.StepRequest{Release: "r2", Model: "m", New: version("2", 10), Sites: []string{"s1", "s2"}})
	if err != nil || res.Changed != 2 {
		t.Fatalf("step = %+v, %v; want 2 changed", res, err)
	}
	ds := desired(t, d, "s1")
	if got, want := modelfleet.SplitString(ds.Models["m"].Versions), "2:10,1:90"; got != want {
		t.Errorf("split = %s, want %s", got, want)
	}
	// The same step again is a no-op (a retried activity).
	rev := ds.Revision
	if res, _ := d.Step(modelfleet.StepRequest{Release: "r2", Model: "m", New: version("2", 10), Sites: []string{"s1"}}); res.Unchanged != 1 || desired(t, d, "s1").Revision != rev {
		t.Errorf("repeated step changed something: %+v", res)
	}
	d.Step(modelfleet.StepRequest{Release: "r2", Model: "m", New: version("2", 100), Sites: []string{"s1"}})
	if got := modelfleet.SplitString(desired(t, d, "s1").Models["m"].Versions); got != "2:100" {
		t.Errorf("split at 100%% = %s", got)
	}
	if res, err := d.Rollback("r2", "m", []string{"s1", "s2"}, ""); err != nil || res.Changed != 2 {
		t.Fatalf("rollback = %+v, %v", res, err)
	}
	for _, s := range []string{"s1", "s2"} {
		dm := desired(t, d, s).Models["m"]
		if got := modelfleet.SplitString(dm.Versions); got != "1:100" || dm.Release != "" {
			t.Errorf("%s after rollback = %s (lease %q), want 1:100 and no lease", s, got, dm.Release)
		}
	}
}

func TestTwoReleasesCannotInterleaveAtASite(t *testing.T) {
	d := mustOpen(t, "s1", "s2")
	if _, err := d.Step(modelfleet.StepRequest{Release: "release/m/2", Model: "m", New: version("2", 50), Sites: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	res, err := d.Step(modelfleet.StepRequest{Release: "release/m/3", Model: "m", New: version("3", 50), Sites: []string{"s1", "s2"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Conflicts) != 1 || res.Conflicts[0].Site != "s1" || res.Conflicts[0].Holder != "release/m/2" || res.Changed != 1 {
		t.Fatalf("step = %+v, want s1 held by release/m/2 and s2 changed", res)
	}
	if got := modelfleet.SplitString(desired(t, d, "s1").Models["m"].Versions); got != "2:100" {
		t.Errorf("s1 = %s, want release 2's state untouched", got)
	}
	// Another model at the same site is independent.
	if res, _ := d.Step(modelfleet.StepRequest{Release: "release/x/1", Model: "x", New: version("1", 100), Sites: []string{"s1"}}); res.Changed != 1 {
		t.Errorf("other model blocked: %+v", res)
	}
	d.Finish("release/m/2", "m", []string{"s1"})
	if res, _ := d.Step(modelfleet.StepRequest{Release: "release/m/3", Model: "m", New: version("3", 50), Sites: []string{"s1"}}); res.Changed != 1 || len(res.Conflicts) != 0 {
		t.Errorf("after release 2 finished, step = %+v", res)
	}
	if got := modelfleet.SplitString(desired(t, d, "s1").Models["m"].Versions); got != "3:50,2:50" {
		t.Errorf("s1 = %s, want 3:50,2:50", got)
	}
}

func TestProgressAndOfflineSite(t *testing.T) {
	d := mustOpen(t, "s1", "s2", "s3")
	d.Step(modelfleet.StepRequest{Release: "r", Model: "m", New: version("1", 100), Sites: []string{"s1", "s2", "s3"}})
	rev := desired(t, d, "s1").Revision
	d.ReportActual(modelfleet.Actual{Site: "s1", Revision: rev, Models: map[string]modelfleet.ActualModel{"m": {Versions: []modelfleet.ServedVersion{{Version: "1", Requests: 10, Errors: 1, P99LatencyMs: 3}}}}})
	d.ReportActual(modelfleet.Actual{Site: "s2", Revision: rev, Models: map[string]modelfleet.ActualModel{"m": {Error: "digest mismatch"}}})
	p, err := d.Progress("m", "1", []string{"s1", "s2", "s3"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Converged) != 1 || len(p.Failed) != 1 || p.Failed[0].Reason != "digest mismatch" || len(p.Pending) != 1 || p.Pending[0] != "s3" {
		t.Fatalf("progress = %+v", p)
	}
	if p.Requests != 10 || p.Errors != 1 || p.P99LatencyMs != 3 {
		t.Errorf("figures = %d/%d/%v", p.Requests, p.Errors, p.P99LatencyMs)
	}
	// s3 is offline during a rollback: its desired state still says what to
	// restore, so it converges when it returns.
	d.Rollback("r", "m", []string{"s1", "s2", "s3"}, "")
	ds := desired(t, d, "s3")
	if len(ds.Models["m"].Versions) != 0 || ds.Revision != 2 {
		t.Errorf("s3 desired after rollback = %+v, want nothing served at revision 2", ds)
	}
}

func TestDesiredLongPollWakesOnChange(t *testing.T) {
	d := mustOpen(t, "s1")
	got := make(chan int64, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ds, _ := d.Desired(ctx, "s1", 0)
		got <- ds.Revision
	}()
	time.Sleep(50 * time.Millisecond)
	d.Step(modelfleet.StepRequest{Release: "r", Model: "m", New: version("1", 100), Sites: []string{"s1"}})
	select {
	case rev := <-got:
		if rev != 1 {
			t.Errorf("woke with revision %d, want 1", rev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("long poll did not wake on a change")
	}
}

func TestStepRejectsBadInput(t *testing.T) {
	d := mustOpen(t, "s1")
	for _, req := range []modelfleet.StepRequest{
		{Release: "r", Model: "../m", New: version("1", 10), Sites: []string{"s1"}},
		{Release: "r", Model: "m", New: version("1", 0), Sites: []string{"s1"}},
		{Release: "r", Model: "m", New: version("1", 101), Sites: []string{"s1"}},
	} {
		if _, err := d.Step(req); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Errorf("Step(%+v) error = %v, want EINVALID", req, err)
		}
	}
	// An unknown site fails the whole step: nothing is half-applied.
	d.Put(modelfleet.Site{ID: "s2", TaskQueue: "q"})
	if _, err := d.Step(modelfleet.StepRequest{Release: "r", Model: "m", New: version("1", 100), Sites: []string{"s2", "nope"}}); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Fatalf("error = %v, want not found", err)
	}
	if ds := desired(t, d, "s2"); ds.Revision != 0 {
		t.Errorf("s2 changed by a failed step: %+v", ds)
	}
}

func TestHTTP(t *testing.T) {
	d := mustOpen(t, "s1")
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	for _, tt := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/api/sites", "", 200},
		{"GET", "/api/sites/nope", "", 404},
		{"PUT", "/api/sites/s2", `{"id":"s2","taskQueue":"q"}`, 200},
		{"PUT", "/api/sites/s2", `{"id":"s3","taskQueue":"q"}`, 400},
		{"PUT", "/api/sites/s2", `{"id":"s2","taskQueue":"q","bogus":1}`, 400},
		{"PUT", "/api/sites/s2", `{"id":"s2","taskQueue":"q"} trailing`, 400},
		{"PUT", "/api/sites/s2", `{"id":"s2","taskQueue":"q","window":{"schedule":"nightly","duration":"2h"}}`, 400},
		{"PUT", "/api/sites/s2", `{"id":"s2","taskQueue":"q","window":{"schedule":"0 22 * * *","duration":"2h","timeZone":"Europe/Berlin"}}`, 200},
		{"PUT", "/api/sites/s2", `{"id":"s2","taskQueue":"q","labels":{"x":"` + strings.Repeat("y", maxSiteBody) + `"}}`, 413},
		{"GET", "/api/sites/s1/desired?after=x", "", 400},
		{"GET", "/api/sites/s1/desired?wait=forever", "", 400},
		{"GET", "/api/sites/s1/desired", "", 200},
		{"PUT", "/api/sites/s1/actual", `{"site":"s1","revision":0}`, 200},
		{"PUT", "/api/sites/s1/actual", `{"site":"s9","revision":0}`, 400},
		{"POST", "/api/rollouts/step", `{"release":"r","model":"m","new":{"version":"1","digest":"sha256:` + strings.Repeat("a", 64) + `","weight":100},"sites":["s1"]}`, 200},
		{"POST", "/api/rollouts/step", `{"release":"r","model":"m","new":{"version":"1","weight":500},"sites":["s1"]}`, 400},
		{"POST", "/api/rollouts/progress", `{"model":"m","version":"1","sites":["s1"]}`, 200},
		{"PUT", "/api/policies/m", "waves: [{name: a, steps: [50]}]", 400},
		{"PUT", "/api/policies/m", "waves: [{name: a, steps: [50, 100]}]", 200},
		{"GET", "/api/policies/m", "", 200},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, bytes.NewReader([]byte(tt.body)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s %.60q: %d, want %d", tt.method, tt.path, tt.body, resp.StatusCode, tt.want)
		}
	}
}

func FuzzSiteHandler(f *testing.F) {
	f.Add([]byte(`{"id":"s1","taskQueue":"q","labels":{"ring":"canary"}}`))
	f.Add([]byte(`{"id":"s1","taskQueue":"q","window":{"schedule":"0 22 * * *","duration":"2h"}}`))
	f.Add([]byte(`{"site":"s1","revision":3,"models":{"m":{"versions":[{"version":"1","weight":100}]}}}`))
	d := mustOpen(f, "s1")
	h := d.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/api/sites/s1", "/api/sites/s1/actual"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("PUT", path, bytes.NewReader(body)))
			if c := rec.Code; c != 200 && c != 400 && c != 413 {
				t.Fatalf("PUT %s: status %d: %s", path, c, rec.Body)
			}
		}
	})
}

func TestStepRecordsWaveAndApprover(t *testing.T) {
	d := mustOpen(t, "s1")
	// Version 1 serves before the release under test.
	d.Step(modelfleet.StepRequest{Release: "r0", Model: "m", New: version("1", 100), Sites: []string{"s1"}})
	d.Finish("r0", "m", []string{"s1"})
	if _, err := d.Step(modelfleet.StepRequest{Release: "r", Model: "m", New: version("2", 10), Sites: []string{"s1"}, Wave: "canary"}); err != nil {
		t.Fatal(err)
	}
	if dm := desired(t, d, "s1").Models["m"]; dm.Wave != "canary" || dm.ApprovedBy != "" {
		t.Fatalf("after the canary step: wave %q approver %q", dm.Wave, dm.ApprovedBy)
	}
	if _, err := d.Step(modelfleet.StepRequest{Release: "r", Model: "m", New: version("2", 100), Sites: []string{"s1"}, Wave: "fleet", ApprovedBy: "alice"}); err != nil {
		t.Fatal(err)
	}
	if dm := desired(t, d, "s1").Models["m"]; dm.Wave != "fleet" || dm.ApprovedBy != "alice" {
		t.Errorf("after the approved step: wave %q approver %q, want fleet and alice", dm.Wave, dm.ApprovedBy)
	}
}

// A rollback of more sites than one request may carry is split, and every
// site is restored; the counts add up.
func TestClientRollbackSplitsLargeRequests(t *testing.T) {
	ids := []string{"s1", "s2", "s3", "s4", "s5"}
	d := mustOpen(t, ids...)
	d.Step(modelfleet.StepRequest{Release: "r1", Model: "m", New: version("1", 100), Sites: ids})
	d.Finish("r1", "m", ids)
	d.Step(modelfleet.StepRequest{Release: "r2", Model: "m", New: version("2", 100), Sites: ids})
	var calls atomic.Int32
	h := d.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/rollouts/rollback" {
			calls.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer func(n int) { maxSitesPerCall = n }(maxSitesPerCall)
	maxSitesPerCall = 2
	res, err := (&Client{BaseURL: srv.URL}).Rollback(context.Background(), modelfleet.LeaseRequest{Release: "r2", Model: "m", Sites: ids})
	if err != nil || res.Changed != 5 {
		t.Fatalf("rollback = %+v, %v; want 5 changed", res, err)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d requests, want 3 of at most 2 sites", n)
	}
	for _, s := range ids {
		if got := modelfleet.SplitString(desired(t, d, s).Models["m"].Versions); got != "1:100" {
			t.Errorf("%s after rollback = %s, want 1:100", s, got)
		}
	}
}
