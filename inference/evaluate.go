package inference

import (
	"cmp"
	"math"
	"slices"
	"strings"

	"github.com/modelfleet/modelfleet"
)

// taskMetrics lists the metrics Evaluate computes for each task.
var taskMetrics = map[string][]string{
	TaskBinary:     {modelfleet.MetricAUC, modelfleet.MetricAccuracy, modelfleet.MetricF1, modelfleet.MetricLogLoss},
	TaskMulticlass: {modelfleet.MetricAccuracy, modelfleet.MetricMacroF1, modelfleet.MetricLogLoss},
	TaskRegression: {modelfleet.MetricRMSE, modelfleet.MetricMAE, modelfleet.MetricR2},
}

// logLossEpsilon clips probabilities before their logarithm, so a
// confidently wrong row costs log(1e15) ≈ 34.5 rather than infinity.
const logLossEpsilon = 1e-15

// Evaluate scores every row of d with m and computes metric on the scores,
// as scikit-learn's metrics of the same names do:
//
//   - binary classifiers: modelfleet.MetricAUC (ROC AUC, tied scores share
//     their average rank), modelfleet.MetricAccuracy and modelfleet.MetricF1
//     with a positive prediction at score >= 0.5, modelfleet.MetricLogLoss;
//   - multiclass classifiers: accuracy of the most probable class,
//     modelfleet.MetricMacroF1 (the mean F1 of the classes present in the
//     labels or the predictions), log-loss;
//   - regressors: modelfleet.MetricRMSE, modelfleet.MetricMAE and
//     modelfleet.MetricR2 (1 - residual / total sum of squares).
//
// Log-loss clips probabilities to [1e-15, 1-1e-15]. Metrics that the data
// cannot define (no rows, AUC with a single class, F1 with no positives at
// all, R² of a constant target) are errors rather than a number a release
// gate could mistake for a result.
func Evaluate(m *Model, d *Dataset, metric string) (float64, error) {
	task := m.Task()
	if !slices.Contains(taskMetrics[task], metric) {
		if slices.Contains(modelfleet.Metrics, metric) {
			return 0, invalid("metric %q does not apply to a %s model: use %s", metric, task, strings.Join(taskMetrics[task], ", "))
		}
		return 0, invalid("metric %q is not supported: use %s for a %s model", metric, strings.Join(taskMetrics[task], ", "), task)
	}
	if d == nil || len(d.X) == 0 {
		return 0, invalid("data set is empty")
	}
	if len(d.Y) != len(d.X) {
		return 0, invalid("data set has %d rows but %d labels", len(d.X), len(d.Y))
	}
	check, err := labelChecker(task)
	if err != nil {
		return 0, err
	}
	for i, y := range d.Y {
		if msg := check(y, nil); msg != "" {
			return 0, invalid("row %d: label %v must be %s", i+1, y, msg)
		}
		if task == TaskMulticlass && int(y) >= m.NumClasses() {
			return 0, invalid("row %d: label %v is not a class of the model, which has %d (0 to %d)", i+1, y, m.NumClasses(), m.NumClasses()-1)
		}
	}
	switch task {
	case TaskMulticlass:
		return evaluateMulticlass(m, d, metric)
	case TaskRegression:
		return evaluateRegression(m, d, metric)
	}
	scores, err := predictAll(m, d)
	if err != nil {
		return 0, err
	}
	switch metric {
	case modelfleet.MetricAUC:
		return auc(scores, d.Y)
	case modelfleet.MetricAccuracy:
		tp, fp, fn := confusion(scores, d.Y)
		tn := len(scores) - tp - fp - fn
		return float64(tp+tn) / float64(len(scores)), nil
	case modelfleet.MetricLogLoss:
		var sum float64
		for i, p := range scores {
			if d.Y[i] == 0 {
				p = 1 - p
			}
			sum -= math.Log(clip(p))
		}
		return sum / float64(len(scores)), nil
	default:
		tp, fp, fn := confusion(scores, d.Y)
		if tp+fp+fn == 0 {
			return 0, invalid("f1 is undefined: no positive labels and no positive predictions")
		}
		return 2 * float64(tp) / float64(2*tp+fp+fn), nil
	}
}

func predictAll(m *Model, d *Dataset) ([]float64, error) {
	scores := make([]float64, len(d.X))
	for i, x := range d.X {
		p, err := m.Predict(x)
		if err != nil {
			return nil, invalid("row %d: %s", i+1, modelfleet.ErrorMessage(err))
		}
		scores[i] = p
	}
	return scores, nil
}

func clip(p float64) float64 { return min(max(p, logLossEpsilon), 1-logLossEpsilon) }

func evaluateMulticlass(m *Model, d *Dataset, metric string) (float64, error) {
	k := m.NumClasses()
	var probs []float64
	// confusion[true*k + predicted]
	conf := make([]int, k*k)
	var logLoss float64
	for i, x := range d.X {
		var err error
		if probs, err = m.Probabilities(x, probs[:0]); err != nil {
			return 0, invalid("row %d: %s", i+1, modelfleet.ErrorMessage(err))
		}
		y := int(d.Y[i])
		conf[y*k+argmax(probs)]++
		logLoss -= math.Log(clip(probs[y]))
	}
	n := len(d.X)
	switch metric {
	case modelfleet.MetricLogLoss:
		return logLoss / float64(n), nil
	case modelfleet.MetricAccuracy:
		correct := 0
		for c := range k {
			correct += conf[c*k+c]
		}
		return float64(correct) / float64(n), nil
	}
	var sum float64
	present := 0
	for c := range k {
		tp, actual, predicted := conf[c*k+c], 0, 0
		for o := range k {
			actual += conf[c*k+o]
			predicted += conf[o*k+c]
		}
		if actual+predicted == 0 {
			continue // scikit-learn's macro average leaves out a class nobody saw
		}
		present++
		sum += 2 * float64(tp) / float64(actual+predicted)
	}
	return sum / float64(present), nil
}

func evaluateRegression(m *Model, d *Dataset, metric string) (float64, error) {
	pred, err := predictAll(m, d)
	if err != nil {
		return 0, err
	}
	n := float64(len(pred))
	var sq, abs, mean float64
	for i, p := range pred {
		e := p - d.Y[i]
		sq += e * e
		abs += math.Abs(e)
		mean += d.Y[i]
	}
	switch metric {
	case modelfleet.MetricRMSE:
		return math.Sqrt(sq / n), nil
	case modelfleet.MetricMAE:
		return abs / n, nil
	}
	mean /= n
	var total float64
	for _, y := range d.Y {
		total += (y - mean) * (y - mean)
	}
	if total == 0 {
		return 0, invalid("r2 is undefined: every label is the same")
	}
	return 1 - sq/total, nil
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
