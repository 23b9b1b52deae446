package app

import (
	"encoding/json"
	"testing"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/ui"
	"github.com/modelfleet/modelfleet/workflows"
)

// The dashboard decodes the retraining workflow's status query into its
// own view: the fields it shows must keep their JSON names.
func TestRetrainStatusDecodesIntoTheDashboardsView(t *testing.T) {
	cmp := &modelfleet.Comparison{Model: "m", Challenger: "run r2", Champion: "3", Metric: "auc", ChallengerValue: 0.95, ChampionValue: 0.92}
	st := workflows.RetrainStatus{Model: "m", Stage: "idle", Reason: "cooling down", Until: "2026-12-06T10:00:00Z",
		Current: &workflows.RetrainCycle{Number: 3, OpenedAt: "2026-12-06T09:00:00Z", Why: "drift"},
		Cycles: []workflows.RetrainCycle{{Number: 2, OpenedAt: "2026-12-05T09:00:00Z", FinishedAt: "2026-12-05T09:30:00Z", Why: "drift",
			Result: workflows.ResultRegistered, Outcome: "registered m:4", Evaluation: cmp, Registered: &modelfleet.ModelRef{Name: "m", Version: "4"}}}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var v ui.RetrainView
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	c := v.Cycles
	if v.Model != "m" || v.Stage != "idle" || v.Reason != "cooling down" || v.Until == "" || v.Current == nil || v.Current.Number != 3 ||
		len(c) != 1 || c[0].Number != 2 || c[0].FinishedAt == "" || c[0].Why != "drift" || c[0].Result != "registered" ||
		c[0].Outcome == "" || c[0].Evaluation == nil || c[0].Evaluation.ChallengerValue != 0.95 || c[0].Registered == nil || c[0].Registered.Version != "4" {
		t.Errorf("decoded %+v from %s", v, b)
	}
}
