package drift

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// siteWindow scores a site's own population: the first machines rows of
// the validation set (a site runs a few machines, not the whole
// population), temperature shifted by shift.
func (fx *fixture) siteWindow(machines, rows int, shift float64) []byte {
	for i := range rows {
		row := append([]float64(nil), fx.ds.X[i%machines]...)
		row[2] += shift
		fx.agg.Observe("bearing-failure", "3", row, 0.5, time.Millisecond, nil)
	}
	fx.now = fx.now.Add(time.Minute)
	msgs := fx.agg.Flush(fx.now)
	if len(msgs) != 1 {
		fx.t.Fatalf("%d messages", len(msgs))
	}
	b, _ := json.Marshal(msgs[0])
	return b
}

func TestSiteReference(t *testing.T) {
	ctx := context.Background()
	// Ten machines: against the training population this site drifts
	// from the first window, though nothing about it changes.
	fx := newFixture(t)
	training := fx.monitor(&recorder{}, Options{Lookback: 4 * time.Minute, Slots: 4, MinRows: 500})
	for range 4 {
		if err := training.Process(ctx, fx.siteWindow(10, 200, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if v := training.Verdicts()[0]; !v.DataDrift {
		t.Fatalf("ten machines against the training population: no drift (%s); the test's premise is wrong", v.Reason)
	}

	fx = newFixture(t)
	rec := &recorder{}
	m := fx.monitor(rec, Options{Lookback: 4 * time.Minute, Slots: 4, MinRows: 500, Reference: ReferenceSite})
	// Minutes 1-2: collecting the reference (half the lookback, 500 rows).
	for i := range 2 {
		if err := m.Process(ctx, fx.siteWindow(10, 200, 0)); err != nil {
			t.Fatal(err)
		}
		if v := m.Verdicts()[0]; !v.Insufficient || v.Breached() || (i == 1 && len(v.Features) != 0) {
			t.Fatalf("window %d: %+v, want insufficient while the reference fills", i, v)
		}
	}
	// Minutes 3-6: the same machines, unchanged: no drift.
	for i := range 4 {
		if err := m.Process(ctx, fx.siteWindow(10, 200, 0)); err != nil {
			t.Fatal(err)
		}
		v := m.Verdicts()[0]
		if v.Insufficient || v.Breached() || len(v.Features) != 6 {
			t.Fatalf("unchanged window %d: %+v", i, v)
		}
	}
	if len(rec.got) != 0 {
		t.Fatalf("reported %d verdicts for an unchanged site", len(rec.got))
	}
	// The line runs 4 °C hotter: drift on temperature only, normalised by
	// the training standard deviation.
	for range 4 {
		if err := m.Process(ctx, fx.siteWindow(10, 200, 4)); err != nil {
			t.Fatal(err)
		}
	}
	if len(rec.got) == 0 {
		t.Fatal("a 4 °C shift against the site's own reference was not reported")
	}
	v := rec.got[0]
	if !v.DataDrift || !strings.Contains(v.Reason, `"temperature_c"`) || strings.Contains(v.Reason, `"load_pct"`) {
		t.Errorf("verdict: %s", v.Reason)
	}
	// Once the whole lookback is hotter, the distance is the shift in
	// training standard deviations, give or take a bin (binned data).
	last := m.Verdicts()[0]
	if got, want := last.Features[2].Value, 4/fx.base.Features[2].Std; math.Abs(got-want) > 0.5*want {
		t.Errorf("temperature distance %v, want about %v (4 °C in training standard deviations)", got, want)
	}
}

func TestBadReferenceIsRefused(t *testing.T) {
	if _, err := NewMonitor(Options{Baselines: Baselines{}, Reference: "yesterday"}); err == nil || !strings.Contains(err.Error(), `"yesterday"`) {
		t.Errorf("err = %v, want the bad reference named", err)
	}
}

func TestVerdictJSONWithInfiniteMetrics(t *testing.T) {
	v := Verdict{Features: []FeatureVerdict{{Name: "a", Metrics: Metrics{ChiSquared: math.Inf(1), PSI: 0.5, ChiSquaredP: math.NaN()}}}}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var back Verdict
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if m := back.Features[0].Metrics; m.PSI != 0.5 || m.ChiSquared != 0 || !strings.Contains(string(b), `"chiSquared":null`) {
		t.Errorf("round trip: %s -> %+v", b, m)
	}
}
