package drift

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// A site already breaching data quality that then drifts must still be
// reported: drift is a new kind of breach, not the same one persisting.
func TestNewKindOfBreachIsReportedWithinCooldown(t *testing.T) {
	fx := newFixture(t)
	rec := &recorder{}
	m := fx.monitor(rec, Options{Cooldown: time.Hour})
	window := func(rows int, hot float64, tooHighEvery int) []byte {
		for i := range rows {
			row := append([]float64(nil), fx.ds.X[i%len(fx.ds.X)]...)
			row[2] += hot
			if tooHighEvery > 0 && i%tooHighEvery == 0 {
				row[0] = fx.base.Features[0].Max + 1 // beyond anything in training
			}
			fx.agg.Observe("bearing-failure", "3", row, 0.5, time.Millisecond, nil)
		}
		fx.now = fx.now.Add(time.Minute)
		b, _ := json.Marshal(fx.agg.Flush(fx.now)[0])
		return b
	}
	ctx := context.Background()
	if err := m.Process(ctx, window(2000, 0, 50)); err != nil { // 2% out of bounds
		t.Fatal(err)
	}
	if len(rec.got) != 1 || !rec.got[0].QualityBreached || rec.got[0].Drifted() {
		t.Fatalf("first window: %+v, want one data-quality breach", rec.got)
	}
	if err := m.Process(ctx, window(2000, 0, 50)); err != nil {
		t.Fatal(err)
	}
	if len(rec.got) != 1 {
		t.Fatalf("the same breach again within the cooldown was reported: %d verdicts", len(rec.got))
	}
	if err := m.Process(ctx, window(6000, 15, 50)); err != nil { // and now 15 °C hotter
		t.Fatal(err)
	}
	if len(rec.got) != 2 || !rec.got[1].DataDrift {
		t.Fatalf("drift on top of a data-quality breach: %d verdicts, last %+v; want the drift reported", len(rec.got), rec.got[len(rec.got)-1])
	}
}
