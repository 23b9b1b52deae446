package fleet_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/fleet/fleettest"
	"github.com/modelfleet/modelfleet/internal/pgtest"
)

// What each site costs the gateway on PostgreSQL every heartbeat: its
// report, which carries its record (ReportActual), the read of its
// desired state that answers its long poll, and the revision check that
// starts the next one. Sites report in turn, one at a time: the figure
// is the round trips' and statements' cost, not concurrency.
func BenchmarkPostgresHeartbeat(b *testing.B) {
	p := pool(b, pgtest.DSN(b))
	d := openPostgres(b, p)
	var sites []string
	for i := range 100 {
		s := fmt.Sprintf("site-%05d", i)
		sites = append(sites, s)
		if _, err := d.Put(modelfleet.Site{ID: s, TaskQueue: modelfleet.SiteTaskQueue(s), Labels: map[string]string{"ring": "fleet"}}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: "m", New: fleettest.Version("1", 100), Sites: sites}); err != nil {
		b.Fatal(err)
	}
	served := map[string]modelfleet.ActualModel{"m": {Versions: []modelfleet.ServedVersion{{Version: "1", Weight: 100, Requests: 12345}}}}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		s := sites[i%len(sites)]
		rec := modelfleet.Site{ID: s, TaskQueue: modelfleet.SiteTaskQueue(s), RouterURL: "http://127.0.0.1:40001"}
		if err := d.ReportActual(modelfleet.Actual{Site: s, Revision: 1, Models: served, SiteRecord: &rec}); err != nil {
			b.Fatal(err)
		}
		if ds, err := d.Desired(done, s, -1); err != nil || ds.Revision != 1 {
			b.Fatalf("desired = %+v, %v", ds, err)
		}
		if rev, err := d.Revision(context.Background(), s); err != nil || rev != 1 {
			b.Fatalf("revision = %d, %v", rev, err)
		}
	}
}
