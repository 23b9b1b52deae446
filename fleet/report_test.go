package fleet

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/modelfleet/modelfleet"
)

func record(id, router string) *modelfleet.Site {
	return &modelfleet.Site{ID: id, RouterURL: router, TaskQueue: modelfleet.SiteTaskQueue(id),
		Serving: []modelfleet.ServedModel{{ModelRef: modelfleet.ModelRef{Name: "m", Version: "1"}, Digest: "sha256:" + strings.Repeat("a", 64)}}}
}

// storedActual reads the report as stored, raw.
func storedActual(t *testing.T, d *Directory, site string) string {
	t.Helper()
	var raw string
	d.store.(*boltStore).db.View(func(tx *bolt.Tx) error {
		raw = string(tx.Bucket(actualBucket).Get([]byte(site)))
		return nil
	})
	return raw
}

// An agent writes once per interval: its report carries its site record,
// and the directory stores both; the first report of a new site registers
// it, so it is listed before any release touches it.
func TestReportIsTheHeartbeat(t *testing.T) {
	d := mustOpen(t)
	if err := d.ReportActual(modelfleet.Actual{Site: "new", Models: map[string]modelfleet.ActualModel{}, SiteRecord: record("new", "http://10.0.0.1:9001")}); err != nil {
		t.Fatal(err)
	}
	sites, err := d.List()
	if err != nil || len(sites) != 1 {
		t.Fatalf("sites = %+v, %v; want the new site", sites, err)
	}
	s := sites[0]
	if s.ID != "new" || s.RouterURL != "http://10.0.0.1:9001" || s.LastSeen == "" || len(s.Serving) != 1 {
		t.Errorf("registered = %+v", s)
	}
	if raw := storedActual(t, d, "new"); raw == "" || strings.Contains(raw, "siteRecord") {
		t.Errorf("stored report = %s; want the report without a second copy of the record", raw)
	}

	// An operator labels the site; the agent's reports, which carry no
	// labels, keep them, and refresh the rest.
	s.Labels = map[string]string{"ring": "canary"}
	if _, err := d.Put(s); err != nil {
		t.Fatal(err)
	}
	d.now = func() time.Time { return time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC) }
	if err := d.ReportActual(modelfleet.Actual{Site: "new", Revision: 3, SiteRecord: record("new", "http://10.0.0.2:9001")}); err != nil {
		t.Fatal(err)
	}
	got, err := d.Get("new")
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels["ring"] != "canary" || got.RouterURL != "http://10.0.0.2:9001" || got.LastSeen != "2030-01-02T03:04:05Z" {
		t.Errorf("after report = %+v; want labels kept, router and last seen refreshed", got)
	}
	if raw := storedActual(t, d, "new"); !strings.Contains(raw, `"revision":3`) {
		t.Errorf("stored report = %s, want revision 3", raw)
	}
}

func TestReportWithoutRecordNeedsARegisteredSite(t *testing.T) {
	d := mustOpen(t, "known")
	if err := d.ReportActual(modelfleet.Actual{Site: "known"}); err != nil {
		t.Errorf("known site: %v", err)
	}
	err := d.ReportActual(modelfleet.Actual{Site: "unknown"})
	if got, want := modelfleet.ErrorCode(err), modelfleet.ENOTFOUND; got != want {
		t.Errorf("unknown site without a record: code %q (%v), want %q", got, err, want)
	}
}

// A bad record refuses the whole report: neither the record nor the report
// is half-applied.
func TestBadRecordRefusesTheReport(t *testing.T) {
	bad := record("s1", "ftp://x")
	window := record("s1", "http://x")
	window.Window = &modelfleet.MaintenanceWindow{Schedule: "not cron", Duration: "1h"}
	noQueue := record("s1", "http://x")
	noQueue.TaskQueue = ""
	for name, tt := range map[string]struct {
		rec  *modelfleet.Site
		want string
	}{
		"other site": {record("s2", "http://x"), `site record "s2" does not match the report's site "s1"`},
		"router url": {bad, "must be http(s)"},
		"window":     {window, "not cron"},
		"task queue": {noQueue, "task queue is required"},
	} {
		t.Run(name, func(t *testing.T) {
			d := mustOpen(t)
			err := d.ReportActual(modelfleet.Actual{Site: "s1", SiteRecord: tt.rec})
			if modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want invalid: %s", err, tt.want)
			}
			if sites, _ := d.List(); len(sites) != 0 {
				t.Errorf("sites = %+v, want none registered", sites)
			}
			if raw := storedActual(t, d, "s1"); raw != "" {
				t.Errorf("report stored: %s", raw)
			}
		})
	}
}

// Over HTTP, as agents send it.
func TestReportWithRecordOverHTTP(t *testing.T) {
	d := mustOpen(t)
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	c := &Client{BaseURL: srv.URL}
	if err := c.ReportActual(context.Background(), modelfleet.Actual{Site: "s1", SiteRecord: record("s1", "http://x")}); err != nil {
		t.Fatal(err)
	}
	sites, err := c.List(context.Background())
	if err != nil || len(sites) != 1 || sites[0].ID != "s1" || sites[0].RouterURL != "http://x" {
		t.Errorf("sites = %+v, %v", sites, err)
	}
	err = c.ReportActual(context.Background(), modelfleet.Actual{Site: "s1", SiteRecord: record("s2", "http://x")})
	if modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("mismatched record over HTTP: %v, want invalid", err)
	}
}
