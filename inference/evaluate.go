package inference

import (
	"cmp"
	"slices"

	"github.com/modelfleet/modelfleet"
)

// Evaluate scores every row of d with m and computes metric on the scores:
// modelfleet.MetricAUC (ROC AUC, tied scores share their average rank), or
// modelfleet.MetricAccuracy and modelfleet.MetricF1 with a positive
// prediction at score >= 0.5. Metrics that the data cannot define (no rows,
// AUC with a single class, F1 with no positives at all) are errors rather
// than a number a release gate could mistake for a result.
func Evaluate(m *Model, d *Dataset, metric string) (float64, error) {
	switch metric {
	case modelfleet.MetricAUC, modelfleet.MetricAccuracy, modelfleet.MetricF1:
	default:
		return 0, invalid("metric %q is not supported: use %q, %q or %q", metric,
			modelfleet.MetricAUC, modelfleet.MetricAccuracy, modelfleet.MetricF1)
	}
	if d == nil || len(d.X) == 0 {
		return 0, invalid("data set is empty")
	}
	if len(d.Y) != len(d.X) {
		return 0, invalid("data set has %d rows but %d labels", len(d.X), len(d.Y))
	}
	scores := make([]float64, len(d.X))
	for i, x := range d.X {
		if y := d.Y[i]; y != 0 && y != 1 {
			return 0, invalid("row %d: label %v must be 0 or 1", i+1, y)
		}
		p, err := m.Predict(x)
		if err != nil {
			return 0, invalid("row %d: %s", i+1, modelfleet.ErrorMessage(err))
		}
		scores[i] = p
	}
	switch metric {
	case modelfleet.MetricAUC:
		return auc(scores, d.Y)
	case modelfleet.MetricAccuracy:
		tp, fp, fn := confusion(scores, d.Y)
		tn := len(scores) - tp - fp - fn
		return float64(tp+tn) / float64(len(scores)), nil
	default:
		tp, fp, fn := confusion(scores, d.Y)
		if tp+fp+fn == 0 {
			return 0, invalid("f1 is undefined: no positive labels and no positive predictions")
		}
		return 2 * float64(tp) / float64(2*tp+fp+fn), nil
	}
}

// confusion counts true positives, false positives and false negatives at
// threshold 0.5.
func confusion(scores, y []float64) (tp, fp, fn int) {
	for i, s := range scores {
		switch pred := s >= 0.5; {
		case pred && y[i] == 1:
			tp++
		case pred:
			fp++
		case y[i] == 1:
			fn++
		}
	}
	return tp, fp, fn
}

// auc is the Mann-Whitney U statistic normalised to [0, 1]: the chance that
// a random positive scores above a random negative, ties counting half.
func auc(scores, y []float64) (float64, error) {
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(scores[a], scores[b]) })
	var pos, neg, rankSum float64
	for start := 0; start < len(order); {
		end := start + 1
		for end < len(order) && scores[order[end]] == scores[order[start]] {
			end++
		}
		rank := float64(start+1+end) / 2 // average of ranks start+1..end
		for _, i := range order[start:end] {
			if y[i] == 1 {
				pos++
				rankSum += rank
			} else {
				neg++
			}
		}
		start = end
	}
	if pos == 0 || neg == 0 {
		return 0, invalid("auc is undefined: the data set has only one class")
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg), nil
}
