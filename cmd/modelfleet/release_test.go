package main

import (
	"context"
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
	if err := watch(context.Background(), f, id, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if n := len(f.CallsTo(orchestratortest.ReleaseStatus)); n != 1 {
		t.Errorf("%d status reads, want 1", n)
	}
	err := watch(context.Background(), f, "release/bearing-failure/4", time.Millisecond)
	if modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Errorf("watch of no release = %v, want not found", err)
	}
}
