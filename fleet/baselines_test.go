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
