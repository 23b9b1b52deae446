package drift

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// The reason and ID are built without fmt for speed; they must read
// exactly as the fmt formats that define them.
func TestSummarizeReadsAsFormatted(t *testing.T) {
	values := []float64{0, 0.1234567, 1e-7, 12345.678, 0.05, math.Inf(1), math.NaN(), 3}
	v := Verdict{Prediction: &FeatureVerdict{Name: "prediction", Kind: "prediction", Metric: NormalizedWasserstein, Value: 0.31, Threshold: 0.1, Breached: true}}
	var want []string
	for i, x := range values {
		f := FeatureVerdict{Name: fmt.Sprintf("f\"%d\tü", i), Kind: "numerical", Metric: []string{NormalizedWasserstein, ChiSquared, PSI, JensenShannon}[i%4],
			Value: x, Threshold: values[(i+1)%len(values)], Breached: i%3 != 2, QualityBreached: i%2 == 0,
			NullRate: x, TypeErrorRate: values[(i+2)%len(values)], OutOfBoundsRate: 1 / float64(i+3)}
		v.Features = append(v.Features, f)
		if f.Breached {
			op := ">"
			if f.Metric == ChiSquared {
				op = "<"
			}
			want = append(want, fmt.Sprintf("%s %s %.3g %s %g", fmt.Sprintf("feature %q", f.Name), f.Metric, f.Value, op, f.Threshold))
		}
		if f.QualityBreached {
			want = append(want, fmt.Sprintf("feature %q data quality: null rate %.3g, type error rate %.3g, out-of-bounds rate %.3g", f.Name, f.NullRate, f.TypeErrorRate, f.OutOfBoundsRate))
		}
	}
	want = append(want, fmt.Sprintf("prediction %s %.3g > %g", NormalizedWasserstein, 0.31, 0.1))
	v.summarize()
	if got := v.Reason; got != strings.Join(want, "; ") {
		t.Errorf("reason\n%s\nwant\n%s", got, strings.Join(want, "; "))
	}
	if !v.DataDrift || !v.PredictionDrift || !v.QualityBreached {
		t.Errorf("flags %v %v %v, want all set", v.DataDrift, v.PredictionDrift, v.QualityBreached)
	}
	none := Verdict{Features: []FeatureVerdict{{Name: "x"}}}
	if none.summarize(); none.Reason != "" || none.Breached() {
		t.Errorf("nothing breached: reason %q", none.Reason)
	}
	end := time.Date(2030, 1, 2, 3, 4, 5, 6e6, time.UTC)
	if got, want := verdictID("plant-1", "bearing", "3", end), fmt.Sprintf("drift/%s/%s/%s/%d", "plant-1", "bearing", "3", end.UnixMilli()); got != want {
		t.Errorf("verdict ID %q, want %q", got, want)
	}
}
