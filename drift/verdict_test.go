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
	th := Thresholds{NullRate: 0.001, TypeErrorRate: -1, OutOfBoundsRate: 0.0125}
	var want []string
	for i, x := range values {
		f := FeatureVerdict{Name: fmt.Sprintf("f\"%d\tü", i), Kind: "numerical", Metric: []string{NormalizedWasserstein, ChiSquared, PSI, JensenShannon}[i%4],
			Value: x, Threshold: values[(i+1)%len(values)], Breached: i%3 != 2, QualityBreached: i%2 == 0, Rows: int64(100 * i),
			NullRate: x, TypeErrorRate: values[(i+2)%len(values)], OutOfBoundsRate: 1 / float64(i+3), BeyondMarginRate: 1 / float64(i+4), QualityRows: int64(101 * i),
			nullBreached: i%4 == 0, typeBreached: i == 2 || i == 4, boundsBreached: i != 4,
			Bounds: Range{Min: -x, Max: float64(i) + 1/3.0, Valid: i%3 != 1}, Margin: float64(i%2) / 7, Seen: Range{Min: -1e-5, Max: 1234567, Valid: i%3 != 0}}
		v.Features = append(v.Features, f)
		if f.Breached {
			op := ">"
			if f.Metric == ChiSquared {
				op = "<"
			}
			want = append(want, fmt.Sprintf("%s %s %.3g %s %g", fmt.Sprintf("feature %q", f.Name), f.Metric, f.Value, op, f.Threshold))
		}
		if f.QualityBreached {
			var clauses []string
			if f.nullBreached {
				clauses = append(clauses, fmt.Sprintf(" null rate %.3g%% of %d rows > %.3g%%", 100*f.NullRate, f.QualityRows, 100*th.NullRate))
			}
			if f.typeBreached {
				clauses = append(clauses, fmt.Sprintf(" type error rate %.3g%% of %d rows > %.3g%%", 100*f.TypeErrorRate, f.QualityRows, 0.0))
			}
			if f.boundsBreached {
				c := fmt.Sprintf(" out of bounds: %.3g%% of %d values", 100*f.BeyondMarginRate, f.Rows)
				if f.Bounds.Valid {
					c += fmt.Sprintf(" outside the baseline's [%.4g, %.4g]", f.Bounds.Min, f.Bounds.Max)
					if f.Margin > 0 {
						c += fmt.Sprintf(" ± %.3g margin", f.Margin)
					}
				} else {
					c += " the baseline never saw"
				}
				if f.Seen.Valid {
					c += fmt.Sprintf(" (seen %.4g–%.4g)", f.Seen.Min, f.Seen.Max)
				}
				clauses = append(clauses, c+fmt.Sprintf(" > %.3g%%", 100*th.OutOfBoundsRate))
			}
			want = append(want, fmt.Sprintf("feature %q", f.Name)+strings.Join(clauses, ","))
		}
	}
	want = append(want, fmt.Sprintf("prediction %s %.3g > %g", NormalizedWasserstein, 0.31, 0.1))
	v.summarize(&th)
	if got := v.Reason; got != strings.Join(want, "; ") {
		t.Errorf("reason\n%s\nwant\n%s", got, strings.Join(want, "; "))
	}
	if !v.DataDrift || !v.PredictionDrift || !v.QualityBreached {
		t.Errorf("flags %v %v %v, want all set", v.DataDrift, v.PredictionDrift, v.QualityBreached)
	}
	none := Verdict{Features: []FeatureVerdict{{Name: "x"}}}
	if none.summarize(&th); none.Reason != "" || none.Breached() {
		t.Errorf("nothing breached: reason %q", none.Reason)
	}
	end := time.Date(2030, 1, 2, 3, 4, 5, 6e6, time.UTC)
	if got, want := verdictID("plant-1", "bearing", "3", end), fmt.Sprintf("drift/%s/%s/%s/%d", "plant-1", "bearing", "3", end.UnixMilli()); got != want {
		t.Errorf("verdict ID %q, want %q", got, want)
	}
}
