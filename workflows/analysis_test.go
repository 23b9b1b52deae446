package workflows

import (
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

var (
	lowPreds  = []int64{30, 10, 0, 0, 0, 0, 0, 0, 0, 0}
	highPreds = []int64{0, 0, 0, 0, 0, 0, 0, 0, 10, 30}
	// lifetime is a day of healthy traffic at each site before the
	// release: figures that would vouch for any version if the criteria
	// read them instead of the bake window.
	lifetime = siteTraffic{requests: 1_000_000, errors: 10, latencyBin: 1, preds: lowPreds, replaced: []int64{300_000, 100_000, 0, 0, 0, 0, 0, 0, 0, 0}, labelled: 100_000, correct: 99_000}
)

// Each criterion, alone in a wave's policy, measured over the bake window:
// a healthy window passes, a bad one rolls back although the sites'
// lifetime figures are healthy. Removing any one check from the analysis
// makes its "bad" case succeed and this test fail.
func TestEachCriterionJudgesTheBakeWindow(t *testing.T) {
	good := siteTraffic{requests: 40, errors: 0, latencyBin: 2, preds: lowPreds, replaced: lowPreds, labelled: 20, correct: 19}
	for _, c := range []struct {
		name, criteria string
		bad            func(*siteTraffic)
		want           string
	}{
		{"error rate", "maxErrorRate: 0.05", func(s *siteTraffic) { s.errors = 8 }, "error rate 0.2000 over"},
		{"p99 latency", "maxP99LatencyMs: 10", func(s *siteTraffic) { s.latencyBin = 8 }, "p99 latency 25.6 ms"},
		{"prediction shift", "maxPredictionShift: 0.2", func(s *siteTraffic) { s.preds = highPreds }, "prediction shift 1.000"},
		{"quality", "minQuality: 0.9", func(s *siteTraffic) { s.correct = 10 }, "accuracy 0.500"},
	} {
		policy := "waves: [{name: canary, select: {ring: canary}, steps: [10, 100], bake: 10m, criteria: {" + c.criteria + "}}, {name: fleet}]"
		t.Run(c.name+"/healthy", func(t *testing.T) {
			h := newHarness(t, policy, sites("c1", "c2"), sites("f1"))
			h.before, h.traffic = lifetime, good
			st, err := h.run()
			if err != nil || st.State != modelfleet.StateSucceeded {
				t.Fatalf("state %q, error %v", st.State, err)
			}
			an := st.Waves[0].Analyses
			if len(an) != 2 || an[0].Verdict != modelfleet.VerdictPass || len(an[0].Criteria) != 1 || an[0].Criteria[0].Samples == 0 {
				t.Errorf("analyses = %+v, want two passed bakes with their samples", an)
			}
		})
		t.Run(c.name+"/bad in the window", func(t *testing.T) {
			h := newHarness(t, policy, sites("c1", "c2"), sites("f1"))
			h.before, h.traffic = lifetime, good
			c.bad(&h.traffic)
			st, err := h.run()
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `step 10%`) || st.State != modelfleet.StateRolledBack {
				t.Fatalf("state %q, error %v: want a breach at the first step saying %q", st.State, err, c.want)
			}
			an := st.Waves[0].Analyses
			if len(an) != 1 || an[0].Verdict != modelfleet.VerdictFail || an[0].Criteria[0].Verdict != modelfleet.VerdictFail || an[0].Sites != 2 {
				t.Errorf("analyses = %+v, want the failed window with its figures", an)
			}
			for _, s := range h.steps {
				if s.New.Weight > 10 {
					t.Errorf("stepped to %d%% after the breach", s.New.Weight)
				}
			}
		})
	}
}

// A bake window with too few samples is inconclusive: the bake is
// extended up to maxBake, and then the wave's onInconclusive decides.
func TestInconclusiveWindows(t *testing.T) {
	const wave = "waves: [{name: all, bake: 10m, maxBake: 30m, criteria: {maxErrorRate: 0.01, minRequests: 500}%s}]"
	quiet := siteTraffic{requests: 10, latencyBin: 2} // 10 a minute: 100 per bake, 300 by maxBake
	t.Run("fails by default", func(t *testing.T) {
		h := newHarness(t, strings.Replace(wave, "%s", "", 1), sites("s1"))
		h.before, h.traffic = lifetime, quiet
		start := h.env.Now()
		st, err := h.run()
		if err == nil || !strings.Contains(err.Error(), "inconclusive after 30m0s") || !strings.Contains(err.Error(), "fewer than the 500 required") || st.State != modelfleet.StateRolledBack {
			t.Fatalf("state %q, error %v: want an inconclusive breach after maxBake", st.State, err)
		}
		a := st.Waves[0].Analyses[0]
		if a.Verdict != modelfleet.VerdictInconclusive || a.Extended != 2 || a.Criteria[0].Samples != 300 || a.Criteria[0].MinSamples != 500 || !strings.Contains(a.Outcome, "failed") {
			t.Errorf("analysis = %+v, want inconclusive, extended twice, 300 of 500 samples, failed", a)
		}
		if took := h.env.Now().Sub(start); took < 30*time.Minute {
			t.Errorf("release ended after %v, before maxBake", took)
		}
	})
	t.Run("an extension that gathers enough passes", func(t *testing.T) {
		h := newHarness(t, strings.Replace(wave, "%s", "", 1), sites("s1", "s2"))
		h.before, h.traffic = lifetime, siteTraffic{requests: 20, latencyBin: 2} // 400 per bake, 800 after one extension
		st, err := h.run()
		if err != nil || st.State != modelfleet.StateSucceeded {
			t.Fatalf("state %q, error %v", st.State, err)
		}
		if a := st.Waves[0].Analyses[0]; a.Verdict != modelfleet.VerdictPass || a.Extended != 1 || a.Criteria[0].Samples != 800 {
			t.Errorf("analysis = %+v, want passed after one extension over 800 requests", a)
		}
	})
	t.Run("pass by policy", func(t *testing.T) {
		h := newHarness(t, strings.Replace(wave, "%s", ", onInconclusive: pass", 1), sites("s1"))
		h.before, h.traffic = lifetime, quiet
		st, err := h.run()
		if err != nil || st.State != modelfleet.StateSucceeded {
			t.Fatalf("state %q, error %v", st.State, err)
		}
		if a := st.Waves[0].Analyses[0]; a.Verdict != modelfleet.VerdictInconclusive || !strings.Contains(a.Outcome, "passed by policy") {
			t.Errorf("analysis = %+v, want the inconclusive verdict recorded as passed by policy", a)
		}
	})
	t.Run("pause for an operator", func(t *testing.T) {
		h := newHarness(t, strings.Replace(wave, "%s", ", onInconclusive: pause", 1), sites("s1"))
		h.before, h.traffic = lifetime, quiet
		var mid modelfleet.ReleaseStatus
		h.env.RegisterDelayedCallback(func() { mid = h.status() }, 2*time.Hour)
		h.signal(3*time.Hour, modelfleet.SignalResume, "grace")
		st, err := h.run()
		if err != nil || st.State != modelfleet.StateSucceeded {
			t.Fatalf("state %q, error %v", st.State, err)
		}
		if mid.State != modelfleet.StatePaused || !strings.Contains(mid.Reason, "paused by analysis") {
			t.Errorf("mid status %q %q, want paused by the analysis", mid.State, mid.Reason)
		}
		if a := st.Waves[0].Analyses[0]; !strings.Contains(a.Outcome, "resumed by grace") {
			t.Errorf("analysis outcome %q, want the operator's resume recorded", a.Outcome)
		}
	})
	t.Run("skip-bake is the operator's call, recorded", func(t *testing.T) {
		h := newHarness(t, strings.Replace(wave, "%s", "", 1), sites("s1"))
		h.before, h.traffic = lifetime, quiet
		h.signal(time.Minute, modelfleet.SignalSkipBake, "frank")
		st, err := h.run()
		if err != nil || st.State != modelfleet.StateSucceeded {
			t.Fatalf("state %q, error %v", st.State, err)
		}
		if a := st.Waves[0].Analyses[0]; a.Verdict != modelfleet.VerdictInconclusive || !strings.Contains(a.Outcome, "skipped by frank") {
			t.Errorf("analysis = %+v", a)
		}
	})
}

// An agent restart mid-bake starts its counters over: the window is not
// measured across it, but starts again from the first reading after it.
func TestAgentRestartRestartsTheWindow(t *testing.T) {
	h := newHarness(t, "waves: [{name: all, bake: 10m, maxBake: 30m, criteria: {maxErrorRate: 0.01, minRequests: 100}}]", sites("s1"))
	h.before, h.traffic = lifetime, siteTraffic{requests: 50, latencyBin: 2}
	h.env.RegisterDelayedCallback(func() { h.epoch = "e2" }, 5*time.Minute)
	st, err := h.run()
	if err != nil || st.State != modelfleet.StateSucceeded {
		t.Fatalf("state %q, error %v", st.State, err)
	}
	a := st.Waves[0].Analyses[0]
	if a.Verdict != modelfleet.VerdictPass || a.Extended != 1 || a.Criteria[0].Samples != 500 {
		t.Errorf("analysis = %+v, want one extension measured from the restart on (500 requests)", a)
	}
}

// At the 100% step the versions the new one replaces no longer predict:
// the shift is measured against what the sites predicted before.
func TestPredictionShiftAtFullTrafficUsesThePriorPredictions(t *testing.T) {
	h := newHarness(t, "waves: [{name: all, bake: 10m, criteria: {maxPredictionShift: 0.2}}]", sites("s1", "s2"))
	h.before = siteTraffic{replaced: []int64{3000, 1000, 0, 0, 0, 0, 0, 0, 0, 0}}
	h.traffic = siteTraffic{preds: highPreds}
	st, err := h.run()
	if err == nil || !strings.Contains(err.Error(), "prediction shift 1.000") || !strings.Contains(err.Error(), "before the new version") || st.State != modelfleet.StateRolledBack {
		t.Fatalf("state %q, error %v: want a shift breach against the prior predictions", st.State, err)
	}
}

// Workflow time, not activity count, bounds an analysis: no criteria, no
// reads beyond convergence.
func TestNoCriteriaNoAnalysis(t *testing.T) {
	h := newHarness(t, "waves: [{name: all, bake: 10m}]", sites("s1"))
	st, err := h.run()
	if err != nil || len(st.Waves[0].Analyses) != 0 || h.reads != 1 {
		t.Fatalf("err %v analyses %+v reads %d, want a plain bake and one convergence read", err, st.Waves[0].Analyses, h.reads)
	}
}

// While its first window runs, a bake says it is measuring, not a verdict.
func TestABakeIsMeasuringUntilItsWindowEnds(t *testing.T) {
	h := newHarness(t, "waves: [{name: all, bake: 10m, criteria: {maxErrorRate: 0.01}}]", sites("s1"))
	h.before, h.traffic = lifetime, siteTraffic{requests: 50, latencyBin: 2}
	var mid modelfleet.ReleaseStatus
	h.env.RegisterDelayedCallback(func() { mid = h.status() }, 5*time.Minute)
	if st, err := h.run(); err != nil || st.Waves[0].Analyses[0].Verdict != modelfleet.VerdictPass {
		t.Fatalf("err %v, analyses %+v", err, st.Waves[0].Analyses)
	}
	if a := mid.Waves[0].Analyses; len(a) != 1 || a[0].Verdict != modelfleet.VerdictMeasuring || a[0].To != "" {
		t.Errorf("mid-bake analyses %+v, want one measuring", a)
	}
}
