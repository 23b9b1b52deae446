package inference

import (
	"math"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// The step model scores x = 0, 1, 2, 3 at sigmoid(-2, -0.5, 0.3, 2), i.e.
// below 0.5 for x <= 1 and above for x >= 2.
func TestEvaluate(t *testing.T) {
	m := loadStep(t)
	rows := func(xs ...float64) [][]float64 {
		var X [][]float64
		for _, x := range xs {
			X = append(X, []float64{x})
		}
		return X
	}
	for _, c := range []struct {
		name   string
		X      [][]float64
		Y      []float64
		metric string
		want   float64
	}{
		// Positives score -0.5 and 2, negatives -2 and 0.3: 3 of 4 pairs ordered.
		{"auc", rows(0, 1, 2, 3), []float64{0, 1, 0, 1}, modelfleet.MetricAUC, 0.75},
		// Ties count half: pairs (0 vs 0) 0.5, (0 vs 1) 0, (3 vs 0) 1, (3 vs 1) 1.
		{"auc ties", rows(0, 0, 1, 3), []float64{0, 1, 0, 1}, modelfleet.MetricAUC, 0.625},
		{"auc perfect", rows(0, 1, 2, 3), []float64{0, 0, 1, 1}, modelfleet.MetricAUC, 1},
		{"auc all tied", rows(3, 3, 3), []float64{1, 0, 1}, modelfleet.MetricAUC, 0.5},
		// Predicted 0, 0, 1, 1 against 0, 1, 0, 1.
		{"accuracy", rows(0, 1, 2, 3), []float64{0, 1, 0, 1}, modelfleet.MetricAccuracy, 0.5},
		{"accuracy one class", rows(0, 1), []float64{0, 0}, modelfleet.MetricAccuracy, 1},
		// tp 1, fp 1, fn 1: 2/(2+1+1).
		{"f1", rows(0, 1, 2, 3), []float64{0, 1, 0, 1}, modelfleet.MetricF1, 0.5},
		// tp 2, fp 0, fn 1: 4/5.
		{"f1 missed one", rows(1, 2, 3, 0), []float64{1, 1, 1, 0}, modelfleet.MetricF1, 0.8},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Evaluate(m, &Dataset{Features: []string{"x"}, X: c.X, Y: c.Y}, c.metric)
			if err != nil || math.Abs(got-c.want) > 1e-12 {
				t.Errorf("Evaluate = %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

func TestEvaluateErrors(t *testing.T) {
	m := loadStep(t)
	for _, c := range []struct {
		name   string
		d      *Dataset
		metric string
		want   string
	}{
		{"metric", &Dataset{X: [][]float64{{1}}, Y: []float64{1}}, "brier", `metric "brier" is not supported`},
		{"metric for task", &Dataset{X: [][]float64{{1}}, Y: []float64{1}}, "rmse", `metric "rmse" does not apply to a binary model`},
		{"nil", nil, modelfleet.MetricAUC, "data set is empty"},
		{"empty", &Dataset{}, modelfleet.MetricAccuracy, "data set is empty"},
		{"labels", &Dataset{X: [][]float64{{1}, {2}}, Y: []float64{1}}, modelfleet.MetricAUC, "2 rows but 1 labels"},
		{"label value", &Dataset{X: [][]float64{{1}}, Y: []float64{0.5}}, modelfleet.MetricAUC, "row 1: label 0.5"},
		{"width", &Dataset{X: [][]float64{{1}, {1, 2}}, Y: []float64{0, 1}}, modelfleet.MetricAUC, "row 2: got 2 features, want 1"},
		{"single class auc", &Dataset{X: [][]float64{{1}, {2}}, Y: []float64{1, 1}}, modelfleet.MetricAUC, "only one class"},
		{"undefined f1", &Dataset{X: [][]float64{{0}, {1}}, Y: []float64{0, 0}}, modelfleet.MetricF1, "f1 is undefined"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Evaluate(m, c.d, c.metric)
			if err == nil {
				t.Fatalf("Evaluate = %v, want error", got)
			}
			if modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q (code %s), want an invalid error containing %q", err, modelfleet.ErrorCode(err), c.want)
			}
		})
	}
}

func TestEvaluateExample(t *testing.T) {
	m, err := Load(modelfleet.FormatLightGBM, readFile(t, "../examples/bearing-failure/model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.NewReader(string(readFile(t, "../examples/bearing-failure/validation.csv")))
	d, err := ReadCSV(f, m.FeatureNames())
	if err != nil {
		t.Fatal(err)
	}
	for metric, min := range map[string]float64{modelfleet.MetricAUC: 0.85, modelfleet.MetricAccuracy: 0.8, modelfleet.MetricF1: 0.5} {
		got, err := Evaluate(m, d, metric)
		if err != nil || got < min {
			t.Errorf("%s = %v, %v; want >= %v", metric, got, err, min)
		}
		t.Logf("%s %.4f", metric, got)
	}
}
