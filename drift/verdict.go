package drift

import (
	"fmt"
	"strconv"
	"time"
)

// Rule is one kind of feature's drift test: the metric that decides and the
// threshold it is compared with.
type Rule struct {
	Metric    string  `json:"metric"`
	Threshold float64 `json:"threshold"`
}

// Breached reports whether value breaks the rule: a distance above its
// threshold, or a test's p-value below it.
func (r Rule) Breached(value float64) bool {
	if r.Metric == ChiSquared {
		return value < r.Threshold
	}
	return value > r.Threshold
}

// Thresholds are what a Monitor judges with. The zero value means
// DefaultThresholds; start from DefaultThresholds() to change one field.
type Thresholds struct {
	Numerical   Rule `json:"numerical"`
	Categorical Rule `json:"categorical"`
	// Prediction applies to the prediction histogram, which is numerical.
	Prediction Rule `json:"prediction"`
	// Data quality: a rate above these breaches. Azure's defaults are 0
	// (any null or type error is reported); see DefaultThresholds for the
	// out-of-bounds rate. Set a rate negative to report any at all.
	NullRate        float64 `json:"nullRate"`
	TypeErrorRate   float64 `json:"typeErrorRate"`
	OutOfBoundsRate float64 `json:"outOfBoundsRate"`
}

// DefaultThresholds are Azure ML model monitoring's defaults for data drift
// (normalized Wasserstein distance 0.1 for numerical features,
// Jensen-Shannon distance 0.1 for categorical ones), for prediction drift
// (the same numerical default), and for null and type-error rates (0).
// The out-of-bounds rate departs from Azure's 0: the bounds are the
// minimum and maximum of a finite training sample, which a window of a
// few thousand rows from the very same distribution exceeds by chance
// (about 2/(n+1) of values for n baseline rows), so 0 would breach on
// almost every window. 1% flags a real excursion.
func DefaultThresholds() Thresholds {
	return Thresholds{
		Numerical:       Rule{NormalizedWasserstein, 0.1},
		Categorical:     Rule{JensenShannon, 0.1},
		Prediction:      Rule{NormalizedWasserstein, 0.1},
		OutOfBoundsRate: 0.01,
	}
}

// DefaultThreshold is a metric's default when a Rule names it without a
// threshold: Azure's 0.1 for the two distances; 0.2 for PSI (the usual
// "significant shift" cut-off, as Azure states none); 0.05 for the
// chi-squared test's p-value.
func DefaultThreshold(metric string) float64 {
	switch metric {
	case PSI:
		return 0.2
	case ChiSquared:
		return 0.05
	}
	return 0.1
}

// withDefaults: the zero Thresholds is DefaultThresholds; otherwise the
// rates are taken as given and only a rule without a metric is defaulted.
func (t Thresholds) withDefaults() (Thresholds, error) {
	d := DefaultThresholds()
	if t == (Thresholds{}) {
		return d, nil
	}
	for _, r := range []struct {
		rule *Rule
		def  Rule
	}{{&t.Numerical, d.Numerical}, {&t.Categorical, d.Categorical}, {&t.Prediction, d.Prediction}} {
		switch r.rule.Metric {
		case "":
			*r.rule = r.def
		case NormalizedWasserstein, JensenShannon, PSI, ChiSquared:
			if r.rule.Threshold == 0 {
				r.rule.Threshold = DefaultThreshold(r.rule.Metric)
			}
		default:
			return t, fmt.Errorf("drift: metric %q is not one of %q, %q, %q, %q", r.rule.Metric, NormalizedWasserstein, JensenShannon, PSI, ChiSquared)
		}
	}
	if t.Categorical.Metric == NormalizedWasserstein {
		return t, fmt.Errorf("drift: metric %q does not apply to categorical features", NormalizedWasserstein)
	}
	return t, nil
}

// Verdict is the monitor's judgement of one site's model version over its
// rolling window.
type Verdict struct {
	// ID identifies this evaluation (site, model, version and window end),
	// e.g. as a retraining trigger's event ID, so a repeated notification
	// is recognisably the same one.
	ID          string    `json:"id"`
	Site        string    `json:"site"`
	Model       string    `json:"model"`
	Version     string    `json:"version"`
	Baseline    string    `json:"baseline,omitempty"`
	WindowStart time.Time `json:"windowStart"`
	WindowEnd   time.Time `json:"windowEnd"`
	Messages    int       `json:"messages"` // signal messages in the window

	Requests  int64   `json:"requests"`
	Scored    int64   `json:"scored"`
	Errors    int64   `json:"errors"`
	ErrorRate float64 `json:"errorRate"`
	// P99LatencyMs is the upper bound of the latency bucket holding the 99th
	// percentile (at least the last bound when it lies beyond it).
	P99LatencyMs float64 `json:"p99LatencyMs"`

	// Insufficient is set when the window has fewer scored rows than the
	// monitor's MinRows: the metrics are computed but nothing is breached,
	// since small samples drift by chance.
	Insufficient bool             `json:"insufficient,omitempty"`
	Features     []FeatureVerdict `json:"features,omitempty"`
	Prediction   *FeatureVerdict  `json:"prediction,omitempty"`

	DataDrift       bool `json:"dataDrift"`       // a feature breached its drift rule
	PredictionDrift bool `json:"predictionDrift"` // the prediction breached its rule
	QualityBreached bool `json:"qualityBreached"` // a feature breached a data-quality rate
	// Reason lists what breached, for people and logs.
	Reason string `json:"reason,omitempty"`
}

// Drifted reports data or prediction drift: what retraining acts on.
func (v *Verdict) Drifted() bool { return v.DataDrift || v.PredictionDrift }

// Breached reports any breach, data quality included: what a release bake
// acts on.
func (v *Verdict) Breached() bool { return v.Drifted() || v.QualityBreached }

// FeatureVerdict is one feature (or the prediction) in a Verdict.
type FeatureVerdict struct {
	Name    string  `json:"name"`
	Kind    string  `json:"kind"`
	Rows    int64   `json:"rows"`
	Metrics Metrics `json:"metrics"`
	// Metric, Value, Threshold and Breached are the deciding rule's.
	Metric    string  `json:"metric"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Breached  bool    `json:"breached"`

	NullRate        float64 `json:"nullRate"`
	TypeErrorRate   float64 `json:"typeErrorRate"`
	OutOfBoundsRate float64 `json:"outOfBoundsRate"`
	QualityBreached bool    `json:"qualityBreached"`
}

// verdictID renders Verdict.ID.
func verdictID(site, model, version string, end time.Time) string {
	b := make([]byte, 0, len("drift/")+len(site)+len(model)+len(version)+3+20)
	b = append(b, "drift/"...)
	b = append(append(b, site...), '/')
	b = append(append(b, model...), '/')
	b = append(append(b, version...), '/')
	return string(strconv.AppendInt(b, end.UnixMilli(), 10))
}

// summarize fills DataDrift, PredictionDrift, QualityBreached and Reason.
// It runs on every evaluation and a drifting window breaches on most
// features, so Reason is appended in one buffer rather than formatted
// with fmt (a sixth of the evaluation's time when it was); it reads as
//
//	feature "x" normalized_wasserstein_distance 0.123 > 0.1; feature "y" data quality: ...
func (v *Verdict) summarize() {
	var b []byte
	sep := func() {
		if len(b) > 0 {
			b = append(b, "; "...)
		}
	}
	for i := range v.Features {
		f := &v.Features[i]
		if f.Breached {
			v.DataDrift = true
			sep()
			b = f.appendRule(b)
		}
		if f.QualityBreached {
			v.QualityBreached = true
			sep()
			b = append(strconv.AppendQuote(append(b, "feature "...), f.Name), " data quality: null rate "...)
			b = append(appendG3(b, f.NullRate), ", type error rate "...)
			b = append(appendG3(b, f.TypeErrorRate), ", out-of-bounds rate "...)
			b = appendG3(b, f.OutOfBoundsRate)
		}
	}
	if p := v.Prediction; p != nil && p.Breached {
		v.PredictionDrift = true
		sep()
		b = p.appendRule(b)
	}
	v.Reason = string(b)
}

// appendRule appends what breached: feature "x" metric value > threshold.
func (f *FeatureVerdict) appendRule(b []byte) []byte {
	op := " > "
	if f.Metric == ChiSquared {
		op = " < "
	}
	if f.Kind == "prediction" {
		b = append(b, "prediction"...)
	} else {
		b = strconv.AppendQuote(append(b, "feature "...), f.Name)
	}
	b = append(append(append(b, ' '), f.Metric...), ' ')
	b = append(appendG3(b, f.Value), op...)
	return strconv.AppendFloat(b, f.Threshold, 'g', -1, 64)
}

// appendG3 appends v as fmt's %.3g does.
func appendG3(b []byte, v float64) []byte { return strconv.AppendFloat(b, v, 'g', 3, 64) }
