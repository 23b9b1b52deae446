package drivers_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/drivers"
	"github.com/modelfleet/modelfleet/fleet"
)

// flaky is a driver that fails its first n applies with a retryable error,
// and records what it applied.
type flaky struct {
	drivers.Nop
	mu      sync.Mutex
	fail    int
	applied map[string][]int64
}

func (f *flaky) Apply(ctx context.Context, s modelfleet.Site, d modelfleet.Desired) (modelfleet.Actual, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return modelfleet.Actual{}, errors.New("throttled")
	}
	f.applied[s.ID] = append(f.applied[s.ID], d.Revision)
	return drivers.Served(s.ID, d, nil), nil
}

// The reconciler against the real site directory over HTTP: a release step
// written into a driver-managed site's desired state is applied through the
// driver and acknowledged exactly as an agent would; agent sites are left to
// their agents.
func TestReconcilerConvergesDriverSites(t *testing.T) {
	dir, err := fleet.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	srv := httptest.NewServer(dir.Handler())
	defer srv.Close()
	for _, s := range []modelfleet.Site{
		{ID: "arc-1", TaskQueue: "q", Driver: drivers.AMLArc},
		{ID: "agent-1", TaskQueue: "q"},
	} {
		if _, err := dir.Put(s); err != nil {
			t.Fatal(err)
		}
	}
	drv := &flaky{Nop: drivers.Nop{DriverName: drivers.AMLArc}, fail: 2, applied: map[string][]int64{}}
	r := &drivers.Reconciler{
		Dir:     &fleet.Client{BaseURL: srv.URL},
		Drivers: map[string]drivers.Driver{drivers.Agent: drivers.Nop{}, drivers.AMLArc: drv},
		Wait:    200 * time.Millisecond, Resync: time.Hour,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	nv := modelfleet.DesiredVersion{Version: "2", Digest: "sha256:" + strings.Repeat("b", 64), Format: "lightgbm", ArtifactURL: "x", Weight: 10}
	if _, err := dir.Step(modelfleet.StepRequest{Release: "release/m/2", Model: "m", New: nv, Sites: []string{"arc-1", "agent-1"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		p, err := dir.Progress("m", "2", []string{"arc-1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Converged) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("arc-1 never converged: %+v", p)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p, _ := dir.Progress("m", "2", []string{"agent-1"})
	if len(p.Pending) != 1 {
		t.Fatalf("the reconciler acknowledged an agent site: %+v", p)
	}
	drv.mu.Lock()
	defer drv.mu.Unlock()
	if _, ok := drv.applied["agent-1"]; ok || len(drv.applied["arc-1"]) == 0 || drv.fail != 0 {
		t.Fatalf("applied %v (fail left %d)", drv.applied, drv.fail)
	}
}

func TestFactory(t *testing.T) {
	if d, err := drivers.New("", drivers.Config{}); err != nil || d.Name() != drivers.Agent {
		t.Fatalf("default driver: %v %v", d, err)
	}
	if _, err := drivers.New(drivers.AMLArc, drivers.Config{}); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Fatalf("unconfigured amlarc: %v", err)
	}
	if _, err := drivers.New("helm", drivers.Config{}); err == nil || !strings.Contains(err.Error(), `"helm"`) {
		t.Fatalf("unknown driver: %v", err)
	}
}

func TestPlanGroupsByDriverAndRefusesUnconfigured(t *testing.T) {
	sites := []modelfleet.Site{{ID: "a", Driver: drivers.GitOps}, {ID: "b"}}
	err := drivers.Plan(context.Background(), map[string]drivers.Driver{drivers.Agent: drivers.Nop{}}, sites, nil)
	if modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), `"gitops"`) {
		t.Fatalf("plan: %v", err)
	}
	cur := modelfleet.Desired{Site: "a", Models: map[string]modelfleet.DesiredModel{"m": {Versions: []modelfleet.DesiredVersion{{Version: "1", Weight: 100}}}}}
	peak := drivers.Peak(cur, "m", modelfleet.DesiredVersion{Version: "2"})
	if len(peak.Models["m"].Versions) != 2 || len(cur.Models["m"].Versions) != 1 {
		t.Fatalf("peak %+v, current %+v", peak, cur)
	}
}
