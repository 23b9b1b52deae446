package workflows

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

func TestMonitorVerdictDuringBakeRollsBack(t *testing.T) {
	h := newHarness(t, twoWaves, sites("c1"), sites("f1"))
	// The canary's first step bakes for 10 minutes; the monitor finds the
	// new version's predictions drifted at c1 five minutes in.
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(modelfleet.SignalMonitorVerdict, modelfleet.MonitorVerdict{
			ID: "drift/c1/bearing-failure/2/1", Site: "c1", Version: ref.Version,
			Reason: "prediction: jensen_shannon_distance 0.31 > 0.1", PredictionDrift: true,
		})
	}, 5*time.Minute)
	st, err := h.run()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != "Breach" || !strings.Contains(err.Error(), "drift monitor at site c1") {
		t.Fatalf("workflow error = %v, want a breach naming the monitor and the site", err)
	}
	if st.State != modelfleet.StateRolledBack {
		t.Errorf("state = %q, want rolled-back", st.State)
	}
	if len(h.rollback) != 1 || h.rollback[0][0] != "c1" {
		t.Errorf("rolled back %v, want the canary", h.rollback)
	}
	if len(st.Monitor) != 1 || !st.Monitor[0].PredictionDrift {
		t.Errorf("status monitor = %+v, want the verdict recorded", st.Monitor)
	}
	for _, s := range h.steps {
		if s.New.Weight > 10 {
			t.Errorf("stepped to %d%% after the breach", s.New.Weight)
		}
	}
}

func TestMonitorInputVerdictsAreRecordedNotRolledBack(t *testing.T) {
	h := newHarness(t, twoWaves, sites("c1"), sites("f1"))
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(modelfleet.SignalMonitorVerdict, modelfleet.MonitorVerdict{
			Site: "c1", Version: ref.Version, Reason: "vibration_rms: normalized_wasserstein_distance 0.4 > 0.1", DataDrift: true, QualityBreached: true,
		})
		// A verdict on another version (the one being replaced) is not this release's.
		h.env.SignalWorkflow(modelfleet.SignalMonitorVerdict, modelfleet.MonitorVerdict{Site: "c1", Version: "1", PredictionDrift: true})
	}, 5*time.Minute)
	st, err := h.run()
	if err != nil || st.State != modelfleet.StateSucceeded {
		t.Fatalf("state %q, error %v: data drift alone must not roll back", st.State, err)
	}
	if len(st.Monitor) != 1 || !st.Monitor[0].DataDrift {
		t.Errorf("status monitor = %+v, want the data-drift verdict only", st.Monitor)
	}
}

// legacy makes h replay the way releases ran before the bake-window
// analysis: criteria on the sites' lifetime figures after the bake.
func legacy(h *harness) *harness {
	h.env.OnGetVersion(bakeWindowAnalysis, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	return h
}

func TestLegacyPredictionShiftCriterion(t *testing.T) {
	policy := `
waves:
  - {name: canary, select: {ring: canary}, steps: [10, 100], criteria: {maxPredictionShift: 0.2}}
  - {name: fleet}
`
	t.Run("within", func(t *testing.T) {
		h := legacy(newHarness(t, policy, sites("c1"), sites("f1")))
		h.shift = 0.05
		if st, err := h.run(); err != nil || st.State != modelfleet.StateSucceeded {
			t.Fatalf("state %q, error %v", st.State, err)
		}
	})
	t.Run("exceeded", func(t *testing.T) {
		h := legacy(newHarness(t, policy, sites("c1"), sites("f1")))
		h.shift = 0.35
		st, err := h.run()
		if err == nil || !strings.Contains(err.Error(), "prediction shift 0.350") || st.State != modelfleet.StateRolledBack {
			t.Fatalf("state %q, error %v, want a prediction-shift breach", st.State, err)
		}
	})
}

// A workload release changes the inputs of every version a site serves: a
// prediction drift of any version at a site it is baking rolls it back.
func TestMonitorVerdictRollsBackAWorkloadRelease(t *testing.T) {
	h := newWorkloadHarness(t, twoWaves, sites("c1"), sites("f1"))
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(modelfleet.SignalMonitorVerdict, modelfleet.MonitorVerdict{
			Site: "c1", Version: "1", Reason: "prediction: normalized_wasserstein_distance 0.4 > 0.1", PredictionDrift: true,
		})
	}, 5*time.Minute)
	st, err := h.run(modelfleet.WorkloadReleaseInput{Model: "bearing-failure", Workload: line2})
	if err == nil || !strings.Contains(err.Error(), "drift monitor at site c1") || st.State != modelfleet.StateRolledBack {
		t.Fatalf("state %q, error %v: want the canary's bake ended by the verdict and a rollback", st.State, err)
	}
	if len(h.rollback) != 1 || h.rollback[0][0] != "c1" {
		t.Errorf("rolled back %v, want the canary", h.rollback)
	}
}

func TestLegacyMinQualityCriterion(t *testing.T) {
	policy := `
waves:
  - {name: canary, select: {ring: canary}, steps: [10, 100], criteria: {minQuality: 0.9}}
  - {name: fleet}
`
	for _, c := range []struct {
		name              string
		labelled, correct int64
		breach            bool
	}{
		{"good enough", 200, 190, false},
		{"too few labels to judge", 20, 2, false},
		{"below", 200, 150, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := legacy(newHarness(t, policy, sites("c1"), sites("f1")))
			h.labelled, h.correct = c.labelled, c.correct
			st, err := h.run()
			if !c.breach {
				if err != nil || st.State != modelfleet.StateSucceeded {
					t.Fatalf("state %q, error %v", st.State, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "accuracy 0.750") || st.State != modelfleet.StateRolledBack {
				t.Fatalf("state %q, error %v: want an accuracy breach and a rollback", st.State, err)
			}
		})
	}
}
