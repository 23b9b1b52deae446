package fleet_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/fleet/fleettest"
	"github.com/modelfleet/modelfleet/internal/pgdb"
	"github.com/modelfleet/modelfleet/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// pool opens a migrated pool on a new database of the shared server.
func pool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	p, err := pgdb.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func openPostgres(t testing.TB, p *pgxpool.Pool) *fleet.Directory {
	t.Helper()
	d, err := fleet.OpenPostgres(p, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestConformancePostgres(t *testing.T) {
	fleettest.Run(t, func(t *testing.T) *fleet.Directory {
		return openPostgres(t, pool(t, pgtest.DSN(t)))
	})
}

// A write whose notification never came (here: one made in SQL, which
// notifies nobody) still wakes a long poll: the replica's sweep of every
// site's revision finds it.
func TestPostgresSweepWakesLostNotification(t *testing.T) {
	defer func(p time.Duration) { fleet.PostgresPoll = p }(fleet.PostgresPoll)
	fleet.PostgresPoll = 100 * time.Millisecond
	p := pool(t, pgtest.DSN(t))
	d := openPostgres(t, p)
	if _, err := d.Put(modelfleet.Site{ID: "s1", TaskQueue: modelfleet.SiteTaskQueue("s1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: "m", New: fleettest.Version("1", 100), Sites: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		ds        modelfleet.Desired
		err       error
		waitedOut bool
	}
	got := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ds, err := d.Desired(ctx, "s1", 1)
		got <- answer{ds, err, ctx.Err() != nil}
	}()
	// Write revision 2 behind the directory's back until the poll answers
	// (a write before the listener's first read is woken by its wake-up
	// of every poll instead; either way the poll must answer).
	time.Sleep(500 * time.Millisecond) // most likely waiting by now: if not, it reads revision 2 at once
	ctx := context.Background()
	for rev := 2; ; rev++ {
		if _, err := p.Exec(ctx, `UPDATE fleet_desired SET doc = jsonb_set(doc, '{revision}', to_jsonb($1::bigint)), revision = $1 WHERE site = 's1'`, rev); err != nil {
			t.Fatal(err)
		}
		select {
		case a := <-got:
			if a.err != nil || a.ds.Revision < 2 || a.waitedOut {
				t.Fatalf("long poll = revision %d, %v (waited out its 30 s: %v); want revision 2 or later, woken by the sweep", a.ds.Revision, a.err, a.waitedOut)
			}
			return
		case <-time.After(time.Second):
		}
		if rev == 25 {
			t.Fatal("the long poll did not answer within 24 writes a second apart")
		}
	}
}

// An agent's report carries its site's record (the heartbeat), and the
// store keeps the revision it applied in a column of its own for progress
// reads: a report with a record must set it as one without does.
func TestPostgresReportWithRecordProgress(t *testing.T) {
	d := openPostgres(t, pool(t, pgtest.DSN(t)))
	sites := []string{"s1", "s2"}
	for _, s := range sites {
		if _, err := d.Put(modelfleet.Site{ID: s, TaskQueue: modelfleet.SiteTaskQueue(s), Labels: map[string]string{"plant": "a"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: "m", New: fleettest.Version("1", 100), Sites: sites}); err != nil {
		t.Fatal(err)
	}
	served := map[string]modelfleet.ActualModel{"m": {Versions: []modelfleet.ServedVersion{{Version: "1", Requests: 7}}}}
	rec := &modelfleet.Site{ID: "s1", TaskQueue: modelfleet.SiteTaskQueue("s1"), RouterURL: "http://10.0.0.1:9001"}
	if err := d.ReportActual(modelfleet.Actual{Site: "s1", Revision: 1, Models: served, SiteRecord: rec}); err != nil {
		t.Fatal(err)
	}
	rec2 := &modelfleet.Site{ID: "s2", TaskQueue: modelfleet.SiteTaskQueue("s2")}
	if err := d.ReportActual(modelfleet.Actual{Site: "s2", Revision: 0, SiteRecord: rec2}); err != nil {
		t.Fatal(err)
	}
	p, err := d.Progress("m", "1", sites)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Converged, ",") != "s1" || strings.Join(p.Pending, ",") != "s2" || p.Requests != 7 {
		t.Errorf("progress = %+v; want s1 converged with 7 requests, s2 pending", p)
	}
	// The record's update kept the labels it did not carry.
	s, err := d.Get("s1")
	if err != nil || s.RouterURL != "http://10.0.0.1:9001" || s.Labels["plant"] != "a" {
		t.Errorf("site after its report = %+v, %v; want the report's router URL and the stored labels", s, err)
	}
}
