package drift

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/signals"
)

// qualityWindow scores rows of the validation set with every outEvery-th
// vibration value set to vib (0: none), and rejects rejected requests
// whose vibration is null, and returns the window's message.
func (fx *fixture) qualityWindow(rows, outEvery int, vib float64, rejected int) *signals.Message {
	fx.t.Helper()
	for i := range rows {
		row := append([]float64(nil), fx.ds.X[i%len(fx.ds.X)]...)
		if outEvery > 0 && i%outEvery == 0 {
			row[0] = vib
		}
		fx.agg.Observe("bearing-failure", "3", row, 0.5, time.Millisecond, nil)
	}
	for range rejected {
		fx.agg.ObserveRejected("bearing-failure", "3", bearingFeatures, []byte(`{"vibration_rms_mm_s":null}`), time.Millisecond)
	}
	fx.now = fx.now.Add(time.Minute)
	msgs := fx.agg.Flush(fx.now)
	if len(msgs) != 1 {
		fx.t.Fatalf("%d messages", len(msgs))
	}
	return &msgs[0]
}

func body(t testing.TB, m *signals.Message) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func vibration(t testing.TB, m *Monitor) FeatureVerdict {
	t.Helper()
	vs := m.Verdicts()
	if len(vs) != 1 || len(vs[0].Features) == 0 || vs[0].Features[0].Name != "vibration_rms_mm_s" {
		t.Fatalf("verdicts %+v", vs)
	}
	return vs[0].Features[0]
}

// A data-quality rate is judged only over MinQualityRows rows: below it a
// window whose values are a quarter out of bounds breaches nothing, at it
// the same share does.
func TestQualityMinRows(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	th := DefaultThresholds()
	th.MinQualityRows = 300
	m := fx.monitor(nil, Options{Thresholds: th})
	vmax := fx.base.Features[0].Max
	if err := m.Process(ctx, body(t, fx.qualityWindow(200, 4, 3*vmax, 0))); err != nil {
		t.Fatal(err)
	}
	f := vibration(t, m)
	if f.QualityBreached || f.Rows != 200 || f.OutOfBoundsRate != 0.25 || f.BeyondMarginRate != 0.25 {
		t.Errorf("200 values, a quarter far out of bounds, under a minimum of 300: %+v", f)
	}
	if v := m.Verdicts()[0]; v.Breached() || v.Reason != "" {
		t.Errorf("verdict %+v", v)
	}
	if err := m.Process(ctx, body(t, fx.qualityWindow(100, 4, 3*vmax, 0))); err != nil {
		t.Fatal(err)
	}
	f = vibration(t, m)
	if !f.QualityBreached || f.Rows != 300 || f.OutOfBoundsRate != 0.25 {
		t.Errorf("300 values, a quarter far out of bounds: %+v", f)
	}
	v := m.Verdicts()[0]
	want := `feature "vibration_rms_mm_s" out of bounds: 25% of 300 values outside the baseline's [1.2, 9.03] ± 0.391 margin (seen 1.2–27.09) > 1%`
	if !v.QualityBreached || !v.Insufficient || v.Reason != want {
		t.Errorf("reason %q\nwant   %q (verdict %+v)", v.Reason, want, v)
	}

	// Null rates count rejected rows too: a window of 10 scored rows and
	// 400 rejected ones (too few scored rows to drift) breaches on nulls.
	fx = newFixture(t)
	m = fx.monitor(nil, Options{Thresholds: th})
	if err := m.Process(ctx, body(t, fx.qualityWindow(10, 0, 0, 280))); err != nil {
		t.Fatal(err)
	}
	if f := vibration(t, m); f.QualityBreached || f.QualityRows != 290 {
		t.Errorf("290 rows: %+v", f)
	}
	if err := m.Process(ctx, body(t, fx.qualityWindow(0, 0, 0, 120))); err != nil {
		t.Fatal(err)
	}
	v = m.Verdicts()[0]
	if f := v.Features[0]; !f.QualityBreached || f.QualityRows != 410 || !strings.HasPrefix(v.Reason, `feature "vibration_rms_mm_s" null rate 97.6% of 410 rows > 0%`) {
		t.Errorf("410 rows, 400 null: %+v, reason %q", f, v.Reason)
	}
}

// Values beyond the baseline's sample range by less than the margin are
// its tail: reported, never breached. One value past the margin makes the
// side count.
func TestBoundsMargin(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	m := fx.monitor(nil, Options{})
	f0 := fx.base.Features[0] // vibration_rms_mm_s, [1.2, 9.03]: margin 0.3915
	near := f0.Max + 0.3
	if err := m.Process(ctx, body(t, fx.qualityWindow(1000, 20, near, 0))); err != nil {
		t.Fatal(err)
	}
	f := vibration(t, m)
	if f.QualityBreached || f.OutOfBoundsRate != 0.05 || f.BeyondMarginRate != 0 || !f.Seen.Valid || f.Seen.Max != near ||
		f.Bounds != (Range{Min: f0.Min, Max: f0.Max, Valid: true}) || f.Margin < 0.39 || f.Margin > 0.393 {
		t.Errorf("5%% of values just past the maximum: %+v", f)
	}
	// The same, and one value in the next window past the margin.
	msg := fx.qualityWindow(1000, 20, near, 0)
	if err := m.Process(ctx, body(t, msg)); err != nil {
		t.Fatal(err)
	}
	if f := vibration(t, m); f.QualityBreached {
		t.Errorf("still within the margin: %+v", f)
	}
	far := fx.qualityWindow(1000, 1000, f0.Max+0.5, 0)
	if err := m.Process(ctx, body(t, far)); err != nil {
		t.Fatal(err)
	}
	f = vibration(t, m)
	if !f.QualityBreached || f.Rows != 3000 || f.BeyondMarginRate != 101.0/3000 || f.Seen.Max != f0.Max+0.5 {
		t.Errorf("one value past the margin: %+v", f)
	}
	// Once that window leaves the lookback, the range is the kept slots'.
	fx.now = fx.now.Add(10 * time.Minute)
	fx.agg.Flush(fx.now) // an idle window: the next starts now
	if err := m.Process(ctx, body(t, fx.qualityWindow(1000, 20, near, 0))); err != nil {
		t.Fatal(err)
	}
	f = vibration(t, m)
	if f.QualityBreached || f.Rows != 1000 || f.Seen.Max != near {
		t.Errorf("after the far value left the window: %+v", f)
	}

	// Below the minimum: the same margin.
	fx = newFixture(t)
	m = fx.monitor(nil, Options{})
	if err := m.Process(ctx, body(t, fx.qualityWindow(1000, 20, f0.Min-0.3, 0))); err != nil {
		t.Fatal(err)
	}
	if f := vibration(t, m); f.QualityBreached || f.OutOfBoundsRate != 0.05 {
		t.Errorf("5%% of values just under the minimum: %+v", f)
	}

	// An agent that does not report ranges: every value out of bounds
	// counts, as before ranges were reported.
	fx = newFixture(t)
	m = fx.monitor(nil, Options{})
	old := fx.qualityWindow(1000, 20, near, 0)
	for i := range old.Features {
		old.Features[i].Min, old.Features[i].Max = nil, nil
	}
	if err := m.Process(ctx, body(t, old)); err != nil {
		t.Fatal(err)
	}
	f = vibration(t, m)
	v := m.Verdicts()[0]
	if !f.QualityBreached || f.Seen.Valid || f.BeyondMarginRate != 0.05 ||
		!strings.HasSuffix(v.Reason, `; feature "vibration_rms_mm_s" out of bounds: 5% of 1000 values outside the baseline's [1.2, 9.03] ± 0.391 margin > 1%`) {
		t.Errorf("no ranges: %+v, reason %q", f, v.Reason)
	}

	// BoundsMargin negative: the sample's own bounds.
	fx = newFixture(t)
	th := DefaultThresholds()
	th.BoundsMargin = -1
	m = fx.monitor(nil, Options{Thresholds: th})
	if err := m.Process(ctx, body(t, fx.qualityWindow(1000, 20, near, 0))); err != nil {
		t.Fatal(err)
	}
	if f := vibration(t, m); !f.QualityBreached || f.Margin != 0 {
		t.Errorf("no margin: %+v", f)
	}
}

// A model version's own thresholds (its card's monitoring block) replace
// the monitor's, key by key.
func TestModelThresholds(t *testing.T) {
	ctx := context.Background()
	rate, rows := 0.1, int64(2000)
	own := MonitoringFor{{Name: "bearing-failure", Version: "3"}: {OutOfBoundsRate: &rate, MinQualityRows: &rows}}
	fx := newFixture(t)
	m := fx.monitor(nil, Options{ModelThresholds: own})
	far := fx.base.Features[0].Max * 2
	if err := m.Process(ctx, body(t, fx.qualityWindow(1000, 20, far, 0))); err != nil {
		t.Fatal(err)
	}
	if f := vibration(t, m); f.QualityBreached {
		t.Errorf("1000 rows under the card's minimum of 2000: %+v", f)
	}
	if err := m.Process(ctx, body(t, fx.qualityWindow(1000, 20, far, 0))); err != nil {
		t.Fatal(err)
	}
	if f := vibration(t, m); f.QualityBreached || f.BeyondMarginRate != 0.05 {
		t.Errorf("5%% out of bounds under the card's 10%%: %+v", f)
	}
	if err := m.Process(ctx, body(t, fx.qualityWindow(1000, 2, far, 0))); err != nil {
		t.Fatal(err)
	}
	v := m.Verdicts()[0]
	if !v.QualityBreached || !strings.HasSuffix(v.Reason, "of 3000 values outside the baseline's [1.2, 9.03] ± 0.391 margin (seen 1.2–18.06) > 10%") {
		t.Errorf("20%% out of bounds over the card's 10%%: %+v", v)
	}
	// Other versions keep the monitor's.
	if th, err := m.thresholdsFor(ctx, modelfleet.ModelRef{Name: "bearing-failure", Version: "4"}); err != nil || th.OutOfBoundsRate != 0.01 || th.MinQualityRows != 1000 || th.BoundsMargin != DefaultBoundsMargin {
		t.Errorf("version 4: %+v %v", th, err)
	}
	// A card's margin of 0 is none.
	zero := 0.0
	if th := (&Monitoring{BoundsMargin: &zero}).Apply(DefaultThresholds()); th.margin() != 0 {
		t.Errorf("margin 0: %+v", th)
	}
	for _, bad := range []Monitoring{{NullRate: ptr(-0.1)}, {OutOfBoundsRate: ptr(1.5)}, {BoundsMargin: ptr(-1.0)}, {MinQualityRows: ptr[int64](0)}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v validates", bad)
		}
	}
	if err := (&Monitoring{OutOfBoundsRate: ptr(0.05), NullRate: ptr(0.0), MinQualityRows: ptr[int64](250)}).Validate(); err != nil {
		t.Error(err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestRangeJSON(t *testing.T) {
	f := FeatureVerdict{Name: "x", Bounds: Range{Min: 1.2, Max: 9.03, Valid: true}}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"bounds":[1.2,9.03]`) || strings.Contains(string(b), `"seen"`) {
		t.Errorf("%s", b)
	}
	var back FeatureVerdict
	if err := json.Unmarshal(b, &back); err != nil || back.Bounds != f.Bounds || back.Seen.Valid {
		t.Errorf("round trip %+v %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"seen":null}`), &back); err != nil || back.Seen.Valid {
		t.Errorf("null %+v %v", back, err)
	}
}
