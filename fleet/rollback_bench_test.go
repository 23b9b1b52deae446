package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// What the gateway does for each site in a fleet-wide rollback, one site
// at a time: answer its long poll with the restored desired state, store
// its report, and read its progress. The documents are as bench-rollout's
// sites have them (a LightGBM version with 6 features, a report with its
// counters).
func rollbackFixture(b *testing.B, n int) (*Directory, []string, []byte) {
	b.Helper()
	var sites []string
	for i := range n {
		sites = append(sites, fmt.Sprintf("site-%05d", i))
	}
	d := mustOpen(b, sites...)
	feats := []string{"vibration_rms_mm_s", "temperature_c", "current_a", "rpm", "acoustic_db", "hours"}
	v := func(name string) modelfleet.DesiredVersion {
		dv := version(name, 100)
		dv.Features, dv.ArtifactURL = feats, "http://127.0.0.1:9000/api/blobs/"+dv.Digest
		return dv
	}
	if _, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: "m", New: v("1"), Sites: sites}); err != nil {
		b.Fatal(err)
	}
	if _, err := d.Finish("r1", "m", sites); err != nil {
		b.Fatal(err)
	}
	if _, err := d.Step(modelfleet.StepRequest{Release: "r2", Model: "m", New: v("2"), Sites: sites, TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}); err != nil {
		b.Fatal(err)
	}
	if _, err := d.Rollback("r2", "m", sites, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"); err != nil {
		b.Fatal(err)
	}
	lat := make([]int64, len(modelfleet.LatencyBuckets)+1)
	preds := make([]int64, len(modelfleet.PredictionBins)+1)
	for i := range lat {
		lat[i] = int64(i * 37)
	}
	for i := range preds {
		preds[i] = int64(i * 101)
	}
	rec := modelfleet.Site{ID: sites[0], RouterURL: "http://127.0.0.1:40001", TaskQueue: modelfleet.SiteTaskQueue(sites[0]),
		Labels:  map[string]string{"ring": "fleet", "plant": "p1"},
		Serving: []modelfleet.ServedModel{{ModelRef: modelfleet.ModelRef{Name: "m", Version: "1"}, Digest: v("1").Digest, LoadedAt: "2026-12-06T22:00:00Z"}}}
	report, err := json.Marshal(modelfleet.Actual{Site: sites[0], Revision: 3, SiteRecord: &rec, Models: map[string]modelfleet.ActualModel{
		"m": {Versions: []modelfleet.ServedVersion{{Version: "1", Digest: v("1").Digest, Weight: 100, Requests: 12345, Errors: 12,
			P99LatencyMs: 5, Predictions: preds, Latency: lat, Epoch: 1796591688546681579}}}}})
	if err != nil {
		b.Fatal(err)
	}
	return d, sites, report
}

func BenchmarkRollbackDesired(b *testing.B) {
	d, sites, _ := rollbackFixture(b, 1)
	h := d.Handler()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/sites/"+sites[0]+"/desired?after=2&wait=30s", nil))
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code, rec.Body)
		}
	}
}

func BenchmarkRollbackReport(b *testing.B) {
	d, sites, report := rollbackFixture(b, 1)
	h := d.Handler()
	b.ReportAllocs()
	b.SetBytes(int64(len(report)))
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/api/sites/"+sites[0]+"/actual", bytes.NewReader(report)))
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code, rec.Body)
		}
	}
}

// BenchmarkRollbackProgress reads 1,000 sites of which half reported.
func BenchmarkRollbackProgress(b *testing.B) {
	d, sites, report := rollbackFixture(b, 1000)
	for _, s := range sites[:500] {
		var a modelfleet.Actual
		if err := json.Unmarshal(report, &a); err != nil {
			b.Fatal(err)
		}
		a.Site, a.SiteRecord.ID = s, s
		if err := d.ReportActual(a); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		p, err := d.Progress("m", "2", sites)
		if err != nil || len(p.Pending) != 500 {
			b.Fatal(len(p.Pending), err)
		}
	}
}
