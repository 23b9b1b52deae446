package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

// An agent whose site runs its workloads as processes of their own (the
// gitops driver's Deployments) does not report them failed for want of
// code; one that should host them does.
func TestExternalWorkloadsAreNotReportedFailed(t *testing.T) {
	ds := modelfleet.Desired{Site: "s1", Revision: 2, Workloads: map[string]modelfleet.DesiredWorkload{
		"bearing-failure-line": {Version: "2", Model: "bearing-failure"},
	}}
	var inAgent modelfleet.Actual
	(&Site{cfg: Config{SiteID: "s1"}}).convergeWorkloads(context.Background(), ds, &inAgent)
	if aw := inAgent.Workloads["bearing-failure-line"]; !strings.Contains(aw.Error, "no code for workload") {
		t.Fatalf("agent without the code reported %+v", inAgent.Workloads)
	}
	var external modelfleet.Actual
	(&Site{cfg: Config{SiteID: "s1", ExternalWorkloads: true, ExternalWorkloadHealth: "none"}}).convergeWorkloads(context.Background(), ds, &external)
	if len(external.Workloads) != 0 {
		t.Fatalf("external workloads reported %+v", external.Workloads)
	}
}

// An external workload's health endpoint says which version runs: the
// site reports it, pending while the desired version is not running yet
// (a pod being recreated), failed with the reason once the grace period
// is over, and running once it answers with the desired version.
func TestExternalWorkloadRollout(t *testing.T) {
	var version atomic.Value
	version.Store("1")
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/workloads/bearing-failure-line/healthz" {
			http.NotFound(w, r)
			return
		}
		code := http.StatusOK
		if !healthy.Load() {
			code = http.StatusServiceUnavailable
		}
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"site": "s1", "state": "running", "workload": "bearing-failure-line", "version": version.Load(), "lastError": ""})
	}))
	defer srv.Close()
	s := &Site{cfg: Config{SiteID: "s1", ExternalWorkloads: true, ExternalWorkloadHealth: srv.URL + "/workloads/{name}/healthz", ExternalWorkloadGrace: time.Hour}}
	ds := modelfleet.Desired{Site: "s1", Revision: 2, Workloads: map[string]modelfleet.DesiredWorkload{
		"bearing-failure-line": {Version: "2", Model: "bearing-failure"},
	}}
	probe := func() modelfleet.ActualWorkload {
		var a modelfleet.Actual
		s.convergeWorkloads(context.Background(), ds, &a)
		return a.Workloads["bearing-failure-line"]
	}
	if aw := probe(); aw.Version != "1" || aw.Error != "" || aw.Model != "bearing-failure" {
		t.Fatalf("the old version still runs: %+v", aw)
	}
	// Past the grace period the site reports why.
	s.cfg.ExternalWorkloadGrace = time.Nanosecond
	healthy.Store(false)
	if aw := probe(); !strings.Contains(aw.Error, "bearing-failure-line:2 is not running after") || !strings.Contains(aw.Error, "unhealthy (503") {
		t.Fatalf("past the grace period: %+v", aw)
	}
	healthy.Store(true)
	version.Store("2")
	if aw := probe(); aw.Version != "2" || aw.Error != "" || aw.State != "running" {
		t.Fatalf("the desired version runs: %+v", aw)
	}
	// Nothing answers: pending within the grace period, with why after it.
	srv.Close()
	s.cfg.ExternalWorkloadGrace = time.Hour
	ds.Workloads["bearing-failure-line"] = modelfleet.DesiredWorkload{Version: "3", Model: "bearing-failure"}
	if aw := probe(); aw.Error != "" || aw.Version != "" || aw.State != "rolling out" {
		t.Fatalf("no answer within the grace period: %+v", aw)
	}
	s.cfg.ExternalWorkloadGrace = time.Nanosecond
	if aw := probe(); !strings.Contains(aw.Error, "does not answer") {
		t.Fatalf("no answer after the grace period: %+v", aw)
	}
}
