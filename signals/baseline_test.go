package signals

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet/inference"
)

// bearingFeatures are the example model's features, in model order.
var bearingFeatures = []string{"vibration_rms_mm_s", "vibration_peak_g", "temperature_c", "speed_rpm", "load_pct", "bearing_age_h"}

func bearingData(t testing.TB) *inference.Dataset {
	t.Helper()
	f, err := os.Open("../examples/bearing-failure/validation.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ds, err := inference.ReadCSV(f, bearingFeatures)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func bearingBaseline(t testing.TB) *Baseline {
	t.Helper()
	ds := bearingData(t)
	preds := make([]float64, len(ds.Y))
	for i := range preds {
		preds[i] = 0.1 + 0.8*ds.Y[i] // stands in for the model's output
	}
	b, err := BuildBaseline(ds, 20, WithPredictions(preds))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBuildBaselineFromValidationCSV(t *testing.T) {
	b := bearingBaseline(t)
	if b.Rows != 2000 || len(b.Features) != 6 || b.Prediction == nil {
		t.Fatalf("rows %d, features %d, prediction %v", b.Rows, len(b.Features), b.Prediction != nil)
	}
	for _, f := range b.Features {
		if len(f.Edges) != 21 || len(f.Counts) != 22 {
			t.Fatalf("%s: %d edges, %d counts", f.Name, len(f.Edges), len(f.Counts))
		}
		if f.Edges[0] != f.Min || f.Edges[20] != f.Max || f.Counts[0] != 0 || f.Counts[21] != 0 {
			t.Errorf("%s: edges %v..%v, min %v max %v, out-of-bounds counts %d %d", f.Name, f.Edges[0], f.Edges[20], f.Min, f.Max, f.Counts[0], f.Counts[21])
		}
		if s, _ := sum(f.Counts); s != 2000 {
			t.Errorf("%s: counts add up to %d", f.Name, s)
		}
		if f.Std <= 0 {
			t.Errorf("%s: std %v", f.Name, f.Std)
		}
	}
	if p := b.Prediction; p.Edges[0] != 0 || p.Edges[20] != 1 {
		t.Errorf("probabilities are binned over [0, 1], got %v..%v", p.Edges[0], p.Edges[20])
	}
	if !strings.HasPrefix(b.Digest(), "sha256:") || len(b.Digest()) != 71 {
		t.Errorf("digest %q", b.Digest())
	}
}

func TestBaselineRoundTrip(t *testing.T) {
	b := bearingBaseline(t)
	data, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBaseline(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest() != b.Digest() {
		t.Errorf("digest changed across a round trip: %s != %s", got.Digest(), b.Digest())
	}
	var bad Baseline
	_ = json.Unmarshal(data, &bad)
	bad.Features[2].Counts = bad.Features[2].Counts[:5]
	data, _ = json.Marshal(&bad)
	if _, err := DecodeBaseline(data); err == nil || !strings.Contains(err.Error(), `"temperature_c"`) {
		t.Errorf("a baseline with short counts: err = %v, want one naming the feature", err)
	}
	if _, err := DecodeBaseline([]byte(`{"schemaVersion":"modelfleet.baseline/v9"}`)); err == nil {
		t.Error("an unknown baseline version was accepted")
	}
}

func TestBin(t *testing.T) {
	f := FeatureBaseline{Name: "x", Kind: Numerical, Edges: []float64{0, 1, 2, 3}}
	for v, want := range map[float64]int{-0.5: 0, 0: 1, 0.5: 1, 1: 2, 2.999: 3, 3: 3, 3.5: 4} {
		if got := f.Bin(v); got != want {
			t.Errorf("Bin(%v) = %d, want %d", v, got, want)
		}
	}
	c := FeatureBaseline{Name: "c", Kind: Categorical, Categories: []float64{1, 2, 5}}
	for v, want := range map[float64]int{1: 0, 2: 1, 5: 2, 3: 3, -1: 3} {
		if got := c.Bin(v); got != want {
			t.Errorf("categorical Bin(%v) = %d, want %d", v, got, want)
		}
	}
	constant := FeatureBaseline{Name: "k", Kind: Numerical, Edges: []float64{7, 7}}
	if constant.Bin(7) != 1 || constant.Bin(6) != 0 || constant.Bin(8) != 2 {
		t.Error("a constant feature's single closed bin")
	}
}

func TestBuildBaselineCategorical(t *testing.T) {
	ds := &inference.Dataset{Features: []string{"line", "x"}}
	for i := range 100 {
		ds.X = append(ds.X, []float64{float64(i % 3), float64(i)})
		ds.Y = append(ds.Y, 0)
	}
	b, err := BuildBaseline(ds, 10, WithCategorical("line"))
	if err != nil {
		t.Fatal(err)
	}
	f := b.Feature("line")
	if !f.Categorical() || !slices.Equal(f.Categories, []float64{0, 1, 2}) || !slices.Equal(f.Counts, []int64{34, 33, 33, 0}) {
		t.Errorf("categorical feature: %+v", f)
	}
	if _, err := BuildBaseline(ds, 0); err == nil {
		t.Error("0 bins accepted")
	}
}

func TestBaselinePredictionsPerTask(t *testing.T) {
	ds := bearingData(t)
	n := len(ds.X)
	classes, values := make([]float64, n), make([]float64, n)
	for i := range n {
		classes[i] = float64(i % 3) // class 3 of 4 is never predicted
		values[i] = 0.25 + float64(i%7)*0.1
	}
	// A regressor whose values fall inside [0, 1] is binned over its own
	// range, not over the probabilities' [0, 1].
	reg, err := BuildBaseline(ds, 10, WithTaskPredictions("regression", 1, values))
	if err != nil {
		t.Fatal(err)
	}
	if p := reg.Prediction; p.Categorical() || p.Edges[0] != 0.25 || p.Edges[10] != slices.Max(values) || slices.Max(values) > 0.9 {
		t.Fatalf("regression prediction: kind %s, edges %v", p.Kind, p.Edges)
	}
	bin, err := BuildBaseline(ds, 10, WithTaskPredictions("binary", 2, values))
	if err != nil {
		t.Fatal(err)
	}
	if p := bin.Prediction; p.Edges[0] != 0 || p.Edges[10] != 1 {
		t.Fatalf("binary prediction: edges %v", p.Edges)
	}
	mc, err := BuildBaseline(ds, 10, WithTaskPredictions("multiclass", 4, classes))
	if err != nil {
		t.Fatal(err)
	}
	p := mc.Prediction
	if !p.Categorical() || !slices.Equal(p.Categories, []float64{0, 1, 2, 3}) || len(p.Counts) != 5 || p.Counts[3] != 0 || p.Counts[0]+p.Counts[1]+p.Counts[2] != int64(n) {
		t.Fatalf("multiclass prediction: %+v", p)
	}
	if p.Bin(3) != 3 || p.Bin(4) != 4 {
		t.Fatalf("class 3 bins to %d, class 4 to %d", p.Bin(3), p.Bin(4))
	}
	// The document round-trips with its digest.
	data, err := json.Marshal(mc)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeBaseline(data)
	if err != nil || back.Digest() != mc.Digest() {
		t.Fatalf("decode: %v, digest %s want %s", err, back.Digest(), mc.Digest())
	}
	for _, bad := range []struct {
		task    string
		classes int
		preds   []float64
		want    string
	}{
		{"multiclass", 4, append(slices.Clone(classes[:n-1]), 4), "not a class"},
		{"multiclass", 4, append(slices.Clone(classes[:n-1]), 1.5), "not a class"},
		{"multiclass", 1, classes, "2 to"},
		{"ranking", 1, values, "task \"ranking\""},
	} {
		if _, err := BuildBaseline(ds, 10, WithTaskPredictions(bad.task, bad.classes, bad.preds)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s %d: %v, want %q", bad.task, bad.classes, err, bad.want)
		}
	}
}
