package activities

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/modelfleet/modelfleet"
)

// RollbackAndAwait restores the release's sites and waits for them in one
// activity: it returns once each site reported the revision the restore
// wrote (or a failure to apply it), not on the revisions they reported
// before it, and the sites' desired state is what they served before.
func TestRollbackAndAwaitRestoresThenWaitsForTheSites(t *testing.T) {
	f := newPlanFixture(t)
	const release = "release/bearing-failure/2"
	sites := []string{"c1", "f1"}
	v2 := modelfleet.DesiredVersion{Version: "2", Digest: "sha256:" + strings.Repeat("2", 64), Format: "lightgbm", Features: bearingFeatures, Weight: 100}
	if _, err := f.dir.Step(modelfleet.StepRequest{Release: release, Model: "bearing-failure", New: v2, Sites: sites}); err != nil {
		t.Fatal(err)
	}
	// The agents: each reports what it applied, and waits (long poll) for
	// the next revision; f1's restore fails.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	applied := make(chan string, 8)
	for _, s := range sites {
		go func() {
			after := int64(-1)
			for ctx.Err() == nil {
				ds, err := f.dir.Desired(ctx, s, after)
				if err != nil || ds.Revision <= after {
					continue
				}
				after = ds.Revision
				am := modelfleet.ActualModel{}
				for _, v := range ds.Models["bearing-failure"].Versions {
					am.Versions = append(am.Versions, modelfleet.ServedVersion{Version: v.Version, Digest: v.Digest, Weight: v.Weight})
				}
				if s == "f1" && ds.Models["bearing-failure"].Release == "" {
					am.Error = "disk full"
				}
				if err := f.dir.ReportActual(modelfleet.Actual{Site: s, Revision: ds.Revision, Models: map[string]modelfleet.ActualModel{"bearing-failure": am}}); err != nil {
					t.Error(err)
					return
				}
				applied <- s
			}
		}()
	}
	// Both applied version 2 before the rollback.
	<-applied
	<-applied

	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(f.cloud)
	v, err := env.ExecuteActivity(f.cloud.RollbackAndAwait, RollbackRequest{
		LeaseRequest: modelfleet.LeaseRequest{Release: release, Model: "bearing-failure", Sites: sites},
		Version:      "2", Timeout: time.Minute, Poll: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	var p modelfleet.Progress
	if err := v.Get(&p); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Converged, []string{"c1"}) || len(p.Pending) != 0 || len(p.Failed) != 1 || p.Failed[0].Site != "f1" || p.Failed[0].Reason != "disk full" {
		t.Fatalf("progress = converged %v pending %v failed %+v; want c1 converged on the restore and f1's failure to apply it", p.Converged, p.Pending, p.Failed)
	}
	for _, site := range sites {
		ds, err := f.dir.Desired(context.Background(), site, -1)
		if err != nil {
			t.Fatal(err)
		}
		dm := ds.Models["bearing-failure"]
		if got := modelfleet.SplitString(dm.Versions); got != "1:100" || dm.Release != "" {
			t.Errorf("%s desires %s (lease %q), want 1:100 restored and the lease freed", site, got, dm.Release)
		}
	}
}
