package fleet

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/signals"
)

func testBaseline(t *testing.T) *signals.Baseline {
	t.Helper()
	ds := &inference.Dataset{Features: []string{"a", "b"}}
	var preds []float64
	for i := range 100 {
		ds.X = append(ds.X, []float64{float64(i), float64(i % 7)})
		preds = append(preds, float64(i)/100)
	}
	b, err := signals.BuildBaseline(ds, 10, signals.WithPredictions(preds))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBaselineRoundTripOverHTTP(t *testing.T) {
	d := mustOpen(t)
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	c := &Client{BaseURL: srv.URL}
	ctx := context.Background()

	if _, err := c.Baseline(ctx, "m", "1"); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Fatalf("baseline before any was stored: err = %v, want ENOTFOUND", err)
	}
	b := testBaseline(t)
	digest, err := c.PutBaseline(ctx, "m", "1", b)
	if err != nil {
		t.Fatal(err)
	}
	if digest != b.Digest() || !modelfleet.ValidDigest(digest) {
		t.Fatalf("stored digest %q, want %q", digest, b.Digest())
	}
	rec, err := c.Baseline(ctx, "m", "1")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Digest != digest || len(rec.Baseline.Features) != 2 || rec.Baseline.Prediction == nil {
		t.Fatalf("read back %+v, want the same baseline", rec)
	}
	if rec.Baseline.FeatureIndex("b") != 1 {
		t.Errorf("read-back baseline is not indexed")
	}
}

func TestBaselineRejectsBadDocuments(t *testing.T) {
	d := mustOpen(t)
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	c := &Client{BaseURL: srv.URL}
	for name, body := range map[string]any{
		"wrong schema":  map[string]any{"schemaVersion": "v9", "rows": 1, "features": []any{}},
		"no features":   map[string]any{"schemaVersion": signals.BaselineSchemaVersion, "rows": 1, "features": []any{}},
		"not an object": []int{1, 2},
	} {
		var out BaselineRecord
		err := c.post(context.Background(), "PUT", "/api/baselines/m/1", body, &out)
		if modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Errorf("%s: err = %v, want EINVALID", name, err)
		}
	}
	if _, err := d.Baseline("m", "1"); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Errorf("a rejected baseline was stored: %v", err)
	}
	if _, err := c.PutBaseline(context.Background(), "m", "bad version!", testBaseline(t)); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("bad version name: err = %v, want EINVALID", err)
	}
}

func TestProgressMeasuresPredictionShift(t *testing.T) {
	d := mustOpen(t, "s1", "s2")
	d.Step(modelfleet.StepRequest{Release: "r", Model: "m", New: version("2", 50), Sites: []string{"s1", "s2"}})
	rev := desired(t, d, "s1").Revision
	// Version 1 predicts low, version 2 high: disjoint bins.
	low := []int64{150, 50, 0, 0, 0, 0, 0, 0, 0, 0}
	high := []int64{0, 0, 0, 0, 0, 0, 0, 0, 60, 60}
	for _, s := range []string{"s1", "s2"} {
		d.ReportActual(modelfleet.Actual{Site: s, Revision: rev, Models: map[string]modelfleet.ActualModel{"m": {Versions: []modelfleet.ServedVersion{
			{Version: "1", Predictions: low}, {Version: "2", Predictions: high},
		}}}})
	}
	p, err := d.Progress("m", "2", []string{"s1", "s2"})
	if err != nil {
		t.Fatal(err)
	}
	if p.ShiftSamples != 240 || p.PredictionShift < 0.999 {
		t.Errorf("disjoint predictions: shift %v over %d samples, want 1 over 240", p.PredictionShift, p.ShiftSamples)
	}
	// Too few samples of the new version at one site: not measured.
	p, _ = d.Progress("m", "2", []string{"s1"})
	if p.PredictionShift != 0 || p.ShiftSamples != 120 {
		t.Errorf("120 samples: shift %v, want 0 (not measured below %d)", p.PredictionShift, modelfleet.MinShiftSamples)
	}
	// The same distribution on both sides: no shift.
	for _, s := range []string{"s1", "s2"} {
		d.ReportActual(modelfleet.Actual{Site: s, Revision: rev, Models: map[string]modelfleet.ActualModel{"m": {Versions: []modelfleet.ServedVersion{
			{Version: "1", Predictions: low}, {Version: "2", Predictions: low},
		}}}})
	}
	if p, _ = d.Progress("m", "2", []string{"s1", "s2"}); p.PredictionShift > 1e-9 {
		t.Errorf("same predictions: shift %v, want 0", p.PredictionShift)
	}
}

func TestProgressSumsLabelledPredictions(t *testing.T) {
	d := mustOpen(t, "s1", "s2")
	d.Step(modelfleet.StepRequest{Release: "r", Model: "m", New: version("2", 50), Sites: []string{"s1", "s2"}})
	rev := desired(t, d, "s1").Revision
	for _, s := range []string{"s1", "s2"} {
		d.ReportActual(modelfleet.Actual{Site: s, Revision: rev, Models: map[string]modelfleet.ActualModel{"m": {Versions: []modelfleet.ServedVersion{
			{Version: "1", Labelled: 100, Correct: 10}, {Version: "2", Labelled: 40, Correct: 30},
		}}}})
	}
	p, err := d.Progress("m", "2", []string{"s1", "s2"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Labelled != 80 || p.Correct != 60 {
		t.Errorf("labelled %d correct %d, want the new version's 80 and 60", p.Labelled, p.Correct)
	}
}

// The counters behind a bake window: the new version's, summed over the
// converged sites, the replaced versions' predictions apart, and an epoch
// fingerprint that changes when a site's agent restarts.
func TestProgressCountersForBakeWindows(t *testing.T) {
	d := mustOpen(t, "s1", "s2")
	d.Step(modelfleet.StepRequest{Release: "r", Model: "m", New: version("2", 50), Sites: []string{"s1", "s2"}})
	rev := desired(t, d, "s1").Revision
	lat := make([]int64, len(modelfleet.LatencyBuckets)+1)
	lat[3], lat[len(lat)-1] = 90, 10
	report := func(site string, epoch, requests int64) {
		t.Helper()
		err := d.ReportActual(modelfleet.Actual{Site: site, Revision: rev, Models: map[string]modelfleet.ActualModel{"m": {Versions: []modelfleet.ServedVersion{
			{Version: "1", Requests: 1000, Errors: 500, Predictions: []int64{1, 0, 0, 0, 0, 0, 0, 0, 0, 0}, Epoch: epoch},
			{Version: "2", Requests: requests, Errors: 7, Latency: lat, Labelled: 5, Correct: 4,
				Predictions: []int64{0, 0, 0, 0, 0, 0, 0, 0, 0, 3}, Epoch: epoch},
		}}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	report("s1", 11, 100)
	report("s2", 22, 100)
	p, err := d.Progress("m", "2", []string{"s1", "s2"})
	if err != nil || p.Counters == nil {
		t.Fatalf("progress %+v, %v: want counters", p, err)
	}
	c := *p.Counters
	if c.Sites != 2 || c.Requests != 200 || c.Errors != 14 || c.Labelled != 10 || c.Correct != 8 {
		t.Errorf("counters = %+v, want version 2's at both sites", c)
	}
	if c.Latency[3] != 180 || c.Latency[len(c.Latency)-1] != 20 || c.Predictions[9] != 6 || c.Replaced[0] != 2 {
		t.Errorf("bins: latency %v predictions %v replaced %v", c.Latency, c.Predictions, c.Replaced)
	}
	// More traffic, same agents: the fingerprint holds.
	report("s1", 11, 150)
	if q, _ := d.Progress("m", "2", []string{"s2", "s1"}); q.Counters.Epochs != c.Epochs || q.Counters.Requests != 250 {
		t.Errorf("same agents: epochs %q requests %d, want %q and 250", q.Counters.Epochs, q.Counters.Requests, c.Epochs)
	}
	// s2's agent restarted: its counters started over.
	report("s2", 33, 10)
	if q, _ := d.Progress("m", "2", []string{"s1", "s2"}); q.Counters.Epochs == c.Epochs {
		t.Errorf("a restarted agent left the epoch fingerprint %q unchanged", c.Epochs)
	}
	// A report with a wrong bin layout or negative counts cannot skew the sums.
	err = d.ReportActual(modelfleet.Actual{Site: "s1", Revision: rev, Models: map[string]modelfleet.ActualModel{"m": {Versions: []modelfleet.ServedVersion{
		{Version: "2", Requests: -5, Errors: 9, Latency: []int64{1, 2}, Predictions: []int64{-4, 0, 0, 0, 0, 0, 0, 0, 0, 0}, Epoch: 11},
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := d.Progress("m", "2", []string{"s1"})
	if q.Counters.Requests != 0 || q.Counters.Errors != 0 || q.Counters.Latency[0] != 0 || q.Counters.Predictions[0] != 0 {
		t.Errorf("bad report counted: %+v", q.Counters)
	}
}
