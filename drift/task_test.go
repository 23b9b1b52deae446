package drift

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet/signals"
)

// A multiclass model's predicted class is a categorical histogram in its
// baseline, judged by the categorical rule: a shift in the class mix is
// prediction drift, the same mix is not.
func TestMulticlassPredictionDrift(t *testing.T) {
	fx := newFixture(t)
	preds := make([]float64, len(fx.ds.X))
	for i := range preds {
		preds[i] = float64(i % 3) // an even mix of three classes
	}
	base, err := signals.BuildBaseline(fx.ds, 20, signals.WithTaskPredictions("multiclass", 3, preds))
	if err != nil {
		t.Fatal(err)
	}
	fx.base = base
	fx.agg.SetBaseline("bearing-failure", "3", bearingFeatures, base)
	window := func(class func(i int) float64) []byte {
		for i := range 1500 {
			fx.agg.Observe("bearing-failure", "3", fx.ds.X[i], class(i), time.Millisecond, nil)
		}
		fx.now = fx.now.Add(time.Minute)
		msgs := fx.agg.Flush(fx.now)
		if len(msgs) != 1 {
			t.Fatalf("%d messages", len(msgs))
		}
		b, _ := json.Marshal(msgs[0])
		return b
	}
	rec := &recorder{}
	m := fx.monitor(rec, Options{})
	ctx := context.Background()
	if err := m.Process(ctx, window(func(i int) float64 { return float64(i % 3) })); err != nil {
		t.Fatal(err)
	}
	v := m.Verdicts()[0]
	if v.Prediction == nil || v.Prediction.Metric != JensenShannon || v.Prediction.Breached || v.PredictionDrift {
		t.Fatalf("the baseline's class mix: %+v", v.Prediction)
	}
	// Nine in ten predictions now class 2.
	if err := m.Process(ctx, window(func(i int) float64 {
		if i%10 == 0 {
			return float64(i % 3)
		}
		return 2
	})); err != nil {
		t.Fatal(err)
	}
	if len(rec.got) != 1 || !rec.got[0].PredictionDrift || !strings.Contains(rec.got[0].Reason, "prediction") {
		t.Fatalf("a shifted class mix: %+v", rec.got)
	}
}
