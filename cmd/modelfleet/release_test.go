package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/orchestrator/orchestratortest"
)

func TestReleaseIDNamesModelAndWorkloadReleases(t *testing.T) {
	for _, tt := range []struct {
		args []string
		wl   string
		want string
	}{
		{[]string{"bearing-failure", "3"}, "", "release/bearing-failure/3"},
		{[]string{"bearing-failure"}, "bearing-failure-line:2", "release/bearing-failure/workload/bearing-failure-line/2"},
		{[]string{"release/bearing-failure/workload/bearing-failure-line/2"}, "", "release/bearing-failure/workload/bearing-failure-line/2"},
	} {
		if got, err := releaseID(tt.args, tt.wl); err != nil || got != tt.want {
			t.Errorf("releaseID(%q, %q) = %q, %v; want %q", tt.args, tt.wl, got, err, tt.want)
		}
	}
	for _, bad := range []struct {
		args []string
		wl   string
	}{{[]string{"bearing-failure"}, ""}, {[]string{"bearing-failure", "3"}, "line:2"}, {[]string{"bearing-failure"}, "line"}} {
		if got, err := releaseID(bad.args, bad.wl); err == nil {
			t.Errorf("releaseID(%q, %q) = %q, want an error", bad.args, bad.wl, got)
		}
	}
}

// watch follows a release through the orchestrator until it ends, and
// stops with the orchestrator's error.
func TestWatchStopsWhenTheReleaseEnds(t *testing.T) {
	const id = "release/bearing-failure/3"
	f := &orchestratortest.Fake{Statuses: map[string]modelfleet.ReleaseStatus{
		id: {Model: modelfleet.ModelRef{Name: "bearing-failure", Version: "3"}, State: modelfleet.StateRolledBack},
	}}
	if err := watch(context.Background(), f, id, time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(f.CallsTo(orchestratortest.ReleaseStatus)); n != 1 {
		t.Errorf("%d status reads, want 1", n)
	}
	err := watch(context.Background(), f, "release/bearing-failure/4", time.Millisecond, nil)
	if modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Errorf("watch of no release = %v, want not found", err)
	}
}

// release status and release watch show each bake's criteria: value,
// threshold, samples and verdict, and an inconclusive window's outcome.
func TestRenderWavesShowsBakeAnalyses(t *testing.T) {
	st := modelfleet.ReleaseStatus{Model: modelfleet.ModelRef{Name: "m", Version: "2"}, State: modelfleet.StateRolledBack, Waves: []modelfleet.WaveStatus{{
		Name: "canary", Sites: 2, Counts: map[string]int{}, Analyses: []modelfleet.BakeAnalysis{{
			Step: 10, Sites: 2, From: "2026-01-01T10:00:00Z", To: "2026-01-01T10:30:00Z", Extended: 2,
			Verdict: modelfleet.VerdictInconclusive, Outcome: "failed by policy (onInconclusive: fail)",
			Criteria: []modelfleet.CriterionResult{
				{Name: "errorRate", Value: 0.002, Threshold: 0.01, Samples: 300, MinSamples: 500, Verdict: modelfleet.VerdictInconclusive, Note: "300 samples in the window, fewer than the 500 required"},
				{Name: "quality", Value: 0.95, Threshold: 0.9, Samples: 80, MinSamples: 50, Verdict: modelfleet.VerdictPass},
			},
		}},
	}}}
	out := renderWaves(st)
	for _, want := range []string{
		"bake at 10% on 2 sites, 2026-01-01T10:00:00Z to 2026-01-01T10:30:00Z: INCONCLUSIVE (extended 2×) — failed by policy",
		"errorRate", "0.002  want <= 0.01", "samples 300 (min 500)  inconclusive: 300 samples in the window",
		"want >= 0.9", "samples 80 (min 50)  pass",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

// release watch counts the sites of a wave that report serving the new
// version before their batch completes.
func TestRenderWavesShowsReportedServing(t *testing.T) {
	st := modelfleet.ReleaseStatus{Model: modelfleet.ModelRef{Name: "m", Version: "2"}, State: modelfleet.StateDeploying,
		Waves: []modelfleet.WaveStatus{{Name: "fleet", Sites: 2, Counts: map[string]int{modelfleet.SiteDeploying: 2}}},
		Sites: []modelfleet.SiteStatus{{Site: "a", Wave: "fleet", State: modelfleet.SiteDeploying}, {Site: "b", Wave: "fleet", State: modelfleet.SiteDeploying}},
	}
	st = st.WithReports(map[string]modelfleet.Site{"a": {ID: "a", Serving: []modelfleet.ServedModel{{ModelRef: st.Model}}}})
	if got := renderWaves(st); !strings.Contains(got, "deploying=2  serving=1 (reported)") {
		t.Errorf("renderWaves = %q, want the reported serving site counted", got)
	}
}
