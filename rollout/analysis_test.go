package rollout

import (
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// traffic is what the sites did over a stretch of time: requests with
// errors, each request's latency bin, the new version's and the replaced
// versions' predictions, labelled feedback.
type traffic struct {
	requests, errors  int64
	latencyBin        int
	preds, replaced   []int64
	labelled, correct int64
}

// after returns the counters c would read after t more traffic.
func after(c modelfleet.Counters, t traffic) modelfleet.Counters {
	n := c
	n.Requests += t.requests
	n.Errors += t.errors
	n.Latency = append([]int64(nil), c.Latency...)
	n.Latency[t.latencyBin] += t.requests
	n.Predictions = addTo(c.Predictions, t.preds)
	n.Replaced = addTo(c.Replaced, t.replaced)
	n.Labelled += t.labelled
	n.Correct += t.correct
	return n
}

func addTo(a, b []int64) []int64 {
	out := append([]int64(nil), a...)
	for i := range b {
		out[i] += b[i]
	}
	return out
}

func zero() modelfleet.Counters {
	return modelfleet.Counters{Sites: 3, Epochs: "e1",
		Latency: make([]int64, len(modelfleet.LatencyBuckets)+1), Predictions: make([]int64, 10), Replaced: make([]int64, 10)}
}

var (
	low  = []int64{300, 100, 0, 0, 0, 0, 0, 0, 0, 0}
	high = []int64{0, 0, 0, 0, 0, 0, 0, 0, 100, 300}
	// healthy is hours of good traffic before the bake: it must not vouch
	// for the window.
	healthy = traffic{requests: 1_000_000, errors: 10, latencyBin: 2, preds: []int64{500_000, 500_000, 0, 0, 0, 0, 0, 0, 0, 0},
		replaced: low, labelled: 100_000, correct: 99_000}
)

func result(t *testing.T, rs []modelfleet.CriterionResult, name string) modelfleet.CriterionResult {
	t.Helper()
	for _, r := range rs {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no %s result in %+v", name, rs)
	return modelfleet.CriterionResult{}
}

// Each criterion, judged over the window only: a good window passes, a bad
// window fails however good the counters were before it, and a window with
// fewer samples than the minimum is inconclusive — never a pass.
func TestAnalyzeJudgesEachCriterionOverTheWindowOnly(t *testing.T) {
	start := after(zero(), healthy)
	for _, tc := range []struct {
		name      string
		criteria  Criteria
		criterion string
		window    traffic
		verdict   string
		value     float64
	}{
		{"error rate within", Criteria{MaxErrorRate: 0.05}, CriterionErrorRate, traffic{requests: 200, errors: 2, latencyBin: 2}, modelfleet.VerdictPass, 0.01},
		{"error rate over", Criteria{MaxErrorRate: 0.05}, CriterionErrorRate, traffic{requests: 200, errors: 40, latencyBin: 2}, modelfleet.VerdictFail, 0.2},
		{"error rate too few", Criteria{MaxErrorRate: 0.05}, CriterionErrorRate, traffic{requests: 99, errors: 0, latencyBin: 2}, modelfleet.VerdictInconclusive, 0},
		{"error rate min set", Criteria{MaxErrorRate: 0.05, MinRequests: 10}, CriterionErrorRate, traffic{requests: 20, errors: 10, latencyBin: 2}, modelfleet.VerdictFail, 0.5},
		{"p99 within", Criteria{MaxP99LatencyMs: 1}, CriterionP99Latency, traffic{requests: 200, latencyBin: 2}, modelfleet.VerdictPass, 0.4},
		{"p99 over", Criteria{MaxP99LatencyMs: 1}, CriterionP99Latency, traffic{requests: 200, latencyBin: 6}, modelfleet.VerdictFail, 6.4},
		{"p99 in the last bin", Criteria{MaxP99LatencyMs: 3000}, CriterionP99Latency, traffic{requests: 200, latencyBin: 16}, modelfleet.VerdictFail, 3276.8},
		{"p99 too few", Criteria{MaxP99LatencyMs: 1}, CriterionP99Latency, traffic{requests: 50, latencyBin: 9}, modelfleet.VerdictInconclusive, 51.2},
		{"shift within", Criteria{MaxPredictionShift: 0.2}, CriterionPredictionShift, traffic{preds: low, replaced: low}, modelfleet.VerdictPass, 0},
		{"shift over", Criteria{MaxPredictionShift: 0.2}, CriterionPredictionShift, traffic{preds: high, replaced: low}, modelfleet.VerdictFail, 1},
		{"shift too few", Criteria{MaxPredictionShift: 0.2}, CriterionPredictionShift, traffic{preds: []int64{0, 0, 0, 0, 0, 0, 0, 0, 0, 150}, replaced: low}, modelfleet.VerdictInconclusive, 1},
		{"quality within", Criteria{MinQuality: 0.9}, CriterionQuality, traffic{labelled: 100, correct: 95}, modelfleet.VerdictPass, 0.95},
		{"quality below", Criteria{MinQuality: 0.9}, CriterionQuality, traffic{labelled: 100, correct: 50}, modelfleet.VerdictFail, 0.5},
		{"quality too few", Criteria{MinQuality: 0.9}, CriterionQuality, traffic{labelled: 49, correct: 49}, modelfleet.VerdictInconclusive, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := tc.criteria.Analyze(start, after(start, tc.window), nil)
			if len(rs) != 1 {
				t.Fatalf("results = %+v, want one per criterion set", rs)
			}
			r := result(t, rs, tc.criterion)
			if r.Verdict != tc.verdict || abs(r.Value-tc.value) > 1e-9 {
				t.Errorf("%s = %+v, want verdict %s value %g", tc.criterion, r, tc.verdict, tc.value)
			}
			if Verdict(rs) != tc.verdict {
				t.Errorf("combined verdict %s, want %s", Verdict(rs), tc.verdict)
			}
		})
	}
}

// Lifetime counters would pass this version: a million good requests
// before the bake drown forty bad ones in it.
func TestAnalyzeIsNotFooledByTrafficBeforeTheWindow(t *testing.T) {
	c := Criteria{MaxErrorRate: 0.05, MaxP99LatencyMs: 5, MinQuality: 0.9}
	start := after(zero(), healthy)
	end := after(start, traffic{requests: 200, errors: 40, latencyBin: 8, labelled: 60, correct: 10})
	for _, r := range c.Analyze(start, end, nil) {
		if r.Verdict != modelfleet.VerdictFail {
			t.Errorf("%s = %+v, want fail on the window's figures", r.Name, r)
		}
	}
	if got := c.Analyze(zero(), end, nil); Verdict(got) != modelfleet.VerdictPass {
		t.Fatalf("the lifetime figures pass (%+v): the test would not tell window from lifetime", got)
	}
}

// With the replaced versions unloaded (the 100% step) the shift compares
// with what the sites predicted before the new version reached them.
func TestAnalyzePredictionShiftFallsBackToTheReference(t *testing.T) {
	c := Criteria{MaxPredictionShift: 0.2}
	start := zero()
	end := after(start, traffic{preds: high})
	r := c.Analyze(start, end, low)[0]
	if r.Verdict != modelfleet.VerdictFail || !strings.Contains(r.Note, "before the new version") {
		t.Errorf("shift against the reference = %+v, want a fail naming the reference", r)
	}
	if r := c.Analyze(start, end, nil)[0]; r.Verdict != modelfleet.VerdictInconclusive {
		t.Errorf("no reference at all = %+v, want inconclusive", r)
	}
}

// Readings of different agent runs or site sets are not subtracted.
func TestAnalyzeRefusesIncomparableReadings(t *testing.T) {
	c := Criteria{MaxErrorRate: 0.05, MinQuality: 0.5}
	start := after(zero(), healthy)
	end := after(start, traffic{requests: 500, latencyBin: 1, labelled: 100, correct: 100})
	restarted := end
	restarted.Epochs = "e2"
	fewer := end
	fewer.Sites = 2
	wentDown := end
	wentDown.Requests = start.Requests - 1
	for name, e := range map[string]modelfleet.Counters{"restarted": restarted, "fewer sites": fewer, "went down": wentDown} {
		rs := c.Analyze(start, e, nil)
		if Verdict(rs) != modelfleet.VerdictInconclusive || !strings.Contains(rs[0].Note, "starts again") {
			t.Errorf("%s: %+v, want inconclusive", name, rs)
		}
	}
	if rs := c.Analyze(start, end, nil); Verdict(rs) != modelfleet.VerdictPass {
		t.Errorf("comparable: %+v, want pass", rs)
	}
}

func TestNoCriteriaNoResults(t *testing.T) {
	if rs := (Criteria{MinRequests: 5}).Analyze(zero(), zero(), nil); len(rs) != 0 {
		t.Errorf("results without criteria: %+v", rs)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// A regressor's minQuality is R² over the values that came back in the
// window: hours of accurate predictions before it do not vouch for a
// version that is off in the bake.
func TestAnalyzeRegressorQualityIsR2OverTheWindow(t *testing.T) {
	c := Criteria{MinQuality: 0.8}
	// values 0..99 around their mean 49.5: SST = 83,325
	values := func(sqErr float64) modelfleet.Residuals {
		r := modelfleet.Residuals{N: 100, SquaredError: sqErr}
		for v := range 100 {
			r.TargetSum += float64(v)
			r.TargetSquares += float64(v * v)
		}
		return r
	}
	start := zero()
	good := values(10 * 83325.0 / 100) // R² 0.9
	start.Residuals = &good
	for _, tc := range []struct {
		name    string
		window  modelfleet.Residuals
		verdict string
		value   float64
	}{
		{"within", values(0.1 * 83325), modelfleet.VerdictPass, 0.9},
		{"below", values(0.5 * 83325), modelfleet.VerdictFail, 0.5},
		{"too few", modelfleet.Residuals{N: 10, SquaredError: 1, TargetSum: 45, TargetSquares: 285}, modelfleet.VerdictInconclusive, 1 - 1/82.5},
		{"constant values", modelfleet.Residuals{N: 60, SquaredError: 0, TargetSum: 60 * 7, TargetSquares: 60 * 49}, modelfleet.VerdictInconclusive, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			end := start
			sum := start.Residuals.Add(tc.window)
			end.Residuals = &sum
			r := result(t, c.Analyze(start, end, nil), CriterionQuality)
			if r.Verdict != tc.verdict || abs(r.Value-tc.value) > 1e-9 || !strings.Contains(r.Note, "R²") {
				t.Errorf("%+v, want verdict %s value %g", r, tc.verdict, tc.value)
			}
		})
	}
}
