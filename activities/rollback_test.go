package activities

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/modelfleet/modelfleet"
)

// RollbackAndAwait restores the release's sites and waits for them in one
// activity: it returns once each site reported the revision the restore
// wrote (or a failure to apply it), not on what they reported before it;
// the sites' desired state is what they served before; and, reading no
// figures, it reads only the pending sites after its first read, with no
// last read of every site.
func TestRollbackAndAwaitRestoresThenWaitsForTheSites(t *testing.T) {
	f := newPlanFixture(t)
	log := &progressLog{Fleet: f.cloud.Fleet}
	f.cloud.Fleet = log
	const release = "release/bearing-failure/2"
	v2 := modelfleet.DesiredVersion{Version: "2", Digest: "sha256:" + strings.Repeat("2", 64), Format: "lightgbm", Features: bearingFeatures, Weight: 100}
	// The release reached f1 only; c1 still serves version 1.
	if _, err := f.dir.Step(modelfleet.StepRequest{Release: release, Model: "bearing-failure", New: v2, Sites: []string{"f1"}}); err != nil {
		t.Fatal(err)
	}
	// The agents: each reports what it applied and waits (long poll) for
	// the next revision. f1 applies the restore only once the wait read it
	// pending, and fails to.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	applied := make(chan string, 8)
	for _, s := range []string{"c1", "f1"} {
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
				if s == "f1" && modelfleet.SplitString(ds.Models["bearing-failure"].Versions) == "1:100" {
					for log.count() == 0 {
						time.Sleep(time.Millisecond)
					}
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
	// Both reported what they serve before the rollback.
	<-applied
	<-applied

	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(f.cloud)
	v, err := env.ExecuteActivity(f.cloud.RollbackAndAwait, RollbackRequest{
		LeaseRequest: modelfleet.LeaseRequest{Release: release, Model: "bearing-failure", Sites: []string{"c1", "f1"}},
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
		t.Fatalf("progress = converged %v pending %v failed %+v; want c1 converged and f1's failure to apply the restore", p.Converged, p.Pending, p.Failed)
	}
	for _, site := range []string{"c1", "f1"} {
		ds, err := f.dir.Desired(context.Background(), site, -1)
		if err != nil {
			t.Fatal(err)
		}
		dm := ds.Models["bearing-failure"]
		if got := modelfleet.SplitString(dm.Versions); got != "1:100" || dm.Release != "" {
			t.Errorf("%s desires %s (lease %q), want 1:100 restored and the lease freed", site, got, dm.Release)
		}
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if reads := log.reads; len(reads) < 2 || !slices.Equal(reads[0], []string{"c1", "f1"}) || slices.ContainsFunc(reads[1:], func(r []string) bool { return !slices.Equal(r, []string{"f1"}) }) {
		t.Errorf("reads %v: want both sites first, then only the pending f1", reads)
	}
}

// progressLog is the real fleet client, recording the sites each progress
// read asks for.
type progressLog struct {
	Fleet
	mu    sync.Mutex
	reads [][]string
}

func (l *progressLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reads)
}

func (l *progressLog) Progress(ctx context.Context, req modelfleet.ProgressRequest) (modelfleet.Progress, error) {
	p, err := l.Fleet.Progress(ctx, req)
	l.mu.Lock()
	l.reads = append(l.reads, slices.Clone(req.Sites))
	l.mu.Unlock()
	return p, err
}

// While some sites are pending AwaitConverged reads only them again, and it
// answers with a read of every site once none is: figures of one moment.
func TestAwaitConvergedRereadsOnlyThePendingSites(t *testing.T) {
	f := newPlanFixture(t)
	log := &progressLog{Fleet: f.cloud.Fleet}
	f.cloud.Fleet = log
	const release = "release/bearing-failure/2"
	sites := []string{"c1", "f1"}
	v2 := modelfleet.DesiredVersion{Version: "2", Digest: "sha256:" + strings.Repeat("2", 64), Format: "lightgbm", Features: bearingFeatures, Weight: 100}
	if _, err := f.dir.Step(modelfleet.StepRequest{Release: release, Model: "bearing-failure", New: v2, Sites: sites}); err != nil {
		t.Fatal(err)
	}
	report := func(site string) {
		t.Helper()
		ds, err := f.dir.Desired(context.Background(), site, -1)
		if err != nil {
			t.Fatal(err)
		}
		am := modelfleet.ActualModel{Versions: []modelfleet.ServedVersion{{Version: "2", Digest: v2.Digest, Weight: 100, Requests: 7}}}
		if err := f.dir.ReportActual(modelfleet.Actual{Site: site, Revision: ds.Revision, Models: map[string]modelfleet.ActualModel{"bearing-failure": am}}); err != nil {
			t.Fatal(err)
		}
	}
	report("c1")
	// f1 applies the step once the wait has read c1 converged and f1 not.
	go func() {
		for log.count() == 0 {
			time.Sleep(time.Millisecond)
		}
		report("f1")
	}()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(f.cloud)
	v, err := env.ExecuteActivity(f.cloud.AwaitConverged, AwaitRequest{Model: "bearing-failure", Version: "2", Sites: sites, Timeout: time.Minute, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var p modelfleet.Progress
	if err := v.Get(&p); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Converged, sites) || p.Requests != 14 || p.Counters == nil || p.Counters.Sites != 2 {
		t.Fatalf("progress = converged %v, %d requests, counters %+v; want both sites' figures", p.Converged, p.Requests, p.Counters)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	reads := log.reads
	if len(reads) < 3 || !slices.Equal(reads[0], sites) || !slices.Equal(reads[len(reads)-1], sites) {
		t.Fatalf("reads %v: want every site first and last", reads)
	}
	for _, r := range reads[1 : len(reads)-1] {
		if !slices.Equal(r, []string{"f1"}) {
			t.Errorf("read %v between the first and the last, want only the pending f1", r)
		}
	}
}
