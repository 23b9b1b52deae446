package rollout

import (
	"fmt"
	"math"

	"github.com/modelfleet/modelfleet"
)

// Names of the criteria in an analysis.
const (
	CriterionErrorRate       = "errorRate"
	CriterionP99Latency      = "p99LatencyMs"
	CriterionPredictionShift = "predictionShift"
	CriterionQuality         = "quality"
)

// Requests is the fewest requests of the new version over a window before
// its error rate and p99 are judged (default DefaultMinRequests).
func (c Criteria) Requests() int64 { return orDefault(c.MinRequests, DefaultMinRequests) }

// Predictions is the fewest predictions on each side of a prediction
// shift (default DefaultMinPredictions).
func (c Criteria) Predictions() int64 { return orDefault(c.MinPredictions, DefaultMinPredictions) }

// Labelled is the fewest labelled predictions before quality is judged
// (default DefaultMinLabelled).
func (c Criteria) Labelled() int64 { return orDefault(c.MinLabelled, DefaultMinLabelled) }

func orDefault(v, d int64) int64 {
	if v <= 0 || v > maxMinSamples {
		return d
	}
	return v
}

// Analyze judges each of the criteria set over the window between two
// readings of the same sites' counters, start and end: only what happened
// in between counts. reference is what the sites predicted before the new
// version reached them (the prediction-shift criterion compares with it
// when the versions the new one replaces did not predict enough beside it
// in the window). A criterion with fewer samples than its minimum is
// inconclusive, never passed; so is every criterion when the readings are
// not comparable (an agent restarted, the sites changed).
func (c Criteria) Analyze(start, end modelfleet.Counters, reference []int64) []modelfleet.CriterionResult {
	var out []modelfleet.CriterionResult
	comparable, why := Comparable(start, end)
	d := delta(start, end)
	judge := func(r modelfleet.CriterionResult, failed bool) {
		switch {
		case !comparable:
			r.Verdict, r.Note = modelfleet.VerdictInconclusive, why
		case r.Samples < r.MinSamples:
			r.Verdict = modelfleet.VerdictInconclusive
			if r.Note == "" {
				r.Note = fmt.Sprintf("%d samples in the window, fewer than the %d required", r.Samples, r.MinSamples)
			}
		case failed:
			r.Verdict = modelfleet.VerdictFail
		default:
			r.Verdict = modelfleet.VerdictPass
		}
		out = append(out, r)
	}
	if c.MaxErrorRate > 0 {
		r := modelfleet.CriterionResult{Name: CriterionErrorRate, Threshold: c.MaxErrorRate, Samples: d.Requests, MinSamples: c.Requests()}
		if d.Requests > 0 {
			r.Value = float64(d.Errors) / float64(d.Requests)
		}
		judge(r, r.Value > c.MaxErrorRate)
	}
	if c.MaxP99LatencyMs > 0 {
		n := sum(d.Latency)
		r := modelfleet.CriterionResult{Name: CriterionP99Latency, Threshold: c.MaxP99LatencyMs, Samples: n, MinSamples: c.Requests()}
		over := false
		if n > 0 {
			r.Value, over = p99Ms(d.Latency)
			if over {
				r.Note = fmt.Sprintf("above %g ms, the slowest bucket", r.Value)
			}
		}
		judge(r, over || r.Value > c.MaxP99LatencyMs)
	}
	if c.MaxPredictionShift > 0 {
		ref, against := d.Replaced, "the versions it replaces, beside it in the window"
		if sum(ref) < c.Predictions() && sum(reference) > sum(ref) {
			ref, against = reference, "the sites' predictions before the new version reached them"
		}
		n, m := sum(d.Predictions), sum(ref)
		r := modelfleet.CriterionResult{Name: CriterionPredictionShift, Threshold: c.MaxPredictionShift, Samples: min(n, m), MinSamples: c.Predictions()}
		if n > 0 && m > 0 && len(d.Predictions) == len(ref) {
			r.Value = modelfleet.JensenShannonDistance(floats(d.Predictions), floats(ref))
			r.Note = fmt.Sprintf("Jensen–Shannon distance of %d predictions from %d of %s", n, m, against)
		}
		if r.Samples < r.MinSamples {
			r.Note = fmt.Sprintf("%d predictions of the new version and %d of %s, fewer than the %d required on each side", n, m, against, r.MinSamples)
		}
		judge(r, r.Value > c.MaxPredictionShift)
	}
	if c.MinQuality > 0 && d.Residuals != nil && d.Residuals.N > 0 {
		// A regressor: the coefficient of determination over the values
		// that came back in the window.
		r := modelfleet.CriterionResult{Name: CriterionQuality, Threshold: c.MinQuality, Samples: d.Residuals.N, MinSamples: c.Labelled()}
		r2, ok := d.Residuals.R2()
		r.Value = r2
		r.Note = fmt.Sprintf("R² of %d predictions against the values that came back", d.Residuals.N)
		if !ok && r.Samples >= r.MinSamples {
			// Constant values leave R² undefined: more feedback may not.
			r.Samples, r.Note = 0, fmt.Sprintf("R² is undefined over %d values that are all the same", d.Residuals.N)
		}
		judge(r, r.Value < c.MinQuality)
	} else if c.MinQuality > 0 {
		r := modelfleet.CriterionResult{Name: CriterionQuality, Threshold: c.MinQuality, Samples: d.Labelled, MinSamples: c.Labelled()}
		if d.Labelled > 0 {
			r.Value = float64(d.Correct) / float64(d.Labelled)
		}
		judge(r, r.Value < c.MinQuality)
	}
	return out
}

// Verdict combines criteria results: fail if any failed, else inconclusive
// if any was, else pass.
func Verdict(rs []modelfleet.CriterionResult) string {
	v := modelfleet.VerdictPass
	for _, r := range rs {
		switch r.Verdict {
		case modelfleet.VerdictFail:
			return modelfleet.VerdictFail
		case modelfleet.VerdictInconclusive:
			v = modelfleet.VerdictInconclusive
		}
	}
	return v
}

// Comparable reports whether two readings of counters measure one window:
// the same sites with the same counters' epochs, and no counter lower at
// the end. If not, why says so.
func Comparable(start, end modelfleet.Counters) (ok bool, why string) {
	if start.Epochs == "" || end.Epochs == "" {
		return false, "the fleet directory reported no counters (a gateway older than the bake-window analysis?): the window starts again"
	}
	if start.Epochs != end.Epochs || start.Sites != end.Sites {
		return false, "an agent restarted or the converged sites changed during the window (its counters start over): the window starts again"
	}
	d := delta(start, end)
	if d.Requests < 0 || d.Errors < 0 || d.Labelled < 0 || d.Correct < 0 || negative(d.Latency) || negative(d.Predictions) || negative(d.Replaced) ||
		d.Residuals != nil && (d.Residuals.N < 0 || d.Residuals.SquaredError < 0) {
		return false, "a counter went down during the window: the window starts again"
	}
	return true, ""
}

// delta is end minus start, bin by bin (bins of another length count as
// empty: an older agent's report).
func delta(start, end modelfleet.Counters) modelfleet.Counters {
	return modelfleet.Counters{
		Sites: end.Sites, Epochs: end.Epochs,
		Requests: end.Requests - start.Requests, Errors: end.Errors - start.Errors,
		Labelled: end.Labelled - start.Labelled, Correct: end.Correct - start.Correct,
		Residuals:   subResiduals(end.Residuals, start.Residuals),
		Latency:     sub(end.Latency, start.Latency),
		Predictions: sub(end.Predictions, start.Predictions),
		Replaced:    sub(end.Replaced, start.Replaced),
	}
}

func sub(end, start []int64) []int64 {
	out := make([]int64, len(end))
	for i := range end {
		out[i] = end[i]
		if len(start) == len(end) {
			out[i] -= start[i]
		}
	}
	return out
}

// p99Ms is the upper bound, in milliseconds, of the latency bin holding the
// 99th percentile request: an overestimate by at most one bin, the safe
// side. over is set when it lies in the last, unbounded bin; the value is
// then that bin's lower edge.
func p99Ms(bins []int64) (ms float64, over bool) {
	rank := int64(math.Ceil(0.99 * float64(sum(bins))))
	var seen int64
	edges := modelfleet.LatencyBuckets
	for i, n := range bins {
		seen += n
		if seen >= rank {
			if i < len(edges) {
				return edges[i] * 1000, false
			}
			break
		}
	}
	return edges[len(edges)-1] * 1000, true
}

func sum(xs []int64) int64 {
	var n int64
	for _, x := range xs {
		n += x
	}
	return n
}

func negative(xs []int64) bool {
	for _, x := range xs {
		if x < 0 {
			return true
		}
	}
	return false
}

func floats(xs []int64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}

// subResiduals is end minus start (nil when the end has none).
func subResiduals(end, start *modelfleet.Residuals) *modelfleet.Residuals {
	if end == nil {
		return nil
	}
	d := *end
	if start != nil {
		d = end.Sub(*start)
	}
	return &d
}
