package drift

import (
	"encoding/json"
	"fmt"
	"math"
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
	// Data quality: a feature's rate above these breaches, once at least
	// one row offends (so 0, or a negative rate, reports any at all).
	// Azure's defaults are 0 (any null or type error is reported); see
	// DefaultThresholds for the out-of-bounds rate. The rates are taken as
	// given, 0 included, unless the whole Thresholds is zero.
	NullRate        float64 `json:"nullRate"`
	TypeErrorRate   float64 `json:"typeErrorRate"`
	OutOfBoundsRate float64 `json:"outOfBoundsRate"`
	// BoundsMargin widens a numerical feature's baseline range [min, max]
	// by this share of its width on either side for the out-of-bounds
	// rule: values beyond the sample's extremes but within the margin are
	// the tail of the same population, not bad data. 0 means the default,
	// DefaultBoundsMargin; negative, no margin. See
	// FeatureVerdict.BeyondMarginRate for how a window is judged against it.
	BoundsMargin float64 `json:"boundsMargin,omitempty"`
	// MinQualityRows is the fewest rows a data-quality rate is judged
	// over: scored values for the out-of-bounds rate, scored and rejected
	// rows for the null and type-error rates. Below it the rates are
	// reported but breach nothing. 0 means the monitor's MinRows.
	MinQualityRows int64 `json:"minQualityRows,omitempty"`
}

// DefaultBoundsMargin is Thresholds.BoundsMargin's default: a twentieth of
// the baseline's range on either side, one bin of the 20-bin baselines
// releases build. A baseline's bounds are the extremes of a finite sample
// (2,000 validation rows for the example), which the population it was
// drawn from exceeds by a fraction of its spacing near the ends.
const DefaultBoundsMargin = 0.05

// DefaultThresholds are Azure ML model monitoring's defaults for data drift
// (normalized Wasserstein distance 0.1 for numerical features,
// Jensen-Shannon distance 0.1 for categorical ones), for prediction drift
// (the same numerical default), and for null and type-error rates (0).
// The out-of-bounds rate departs from Azure's 0: the bounds are the
// minimum and maximum of a finite training sample, which a window of a
// few thousand rows from the very same distribution exceeds by chance
// (about 2/(n+1) of values for n baseline rows), so 0 would breach on
// almost every window. 1% of values beyond the bounds widened by
// DefaultBoundsMargin flags a real excursion.
func DefaultThresholds() Thresholds {
	return Thresholds{
		Numerical:       Rule{NormalizedWasserstein, 0.1},
		Categorical:     Rule{JensenShannon, 0.1},
		Prediction:      Rule{NormalizedWasserstein, 0.1},
		OutOfBoundsRate: 0.01,
		BoundsMargin:    DefaultBoundsMargin,
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
	for _, r := range [...]struct {
		name string
		v    float64
	}{{"nullRate", t.NullRate}, {"typeErrorRate", t.TypeErrorRate}, {"outOfBoundsRate", t.OutOfBoundsRate}, {"boundsMargin", t.BoundsMargin}} {
		if math.IsNaN(r.v) || math.IsInf(r.v, 0) {
			return t, fmt.Errorf("drift: %s %v is not a finite number", r.name, r.v)
		}
	}
	if t.BoundsMargin == 0 {
		t.BoundsMargin = DefaultBoundsMargin
	}
	return t, nil
}

// margin is the bounds margin in force: BoundsMargin, none if negative.
func (t *Thresholds) margin() float64 { return max(t.BoundsMargin, 0) }

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

	// Data quality. NullRate and TypeErrorRate are over QualityRows
	// (scored and rejected rows); OutOfBoundsRate is the share of the Rows
	// values outside the baseline's Bounds (its sample minimum and maximum;
	// numerical features), or of categories it never saw.
	NullRate        float64 `json:"nullRate"`
	TypeErrorRate   float64 `json:"typeErrorRate"`
	OutOfBoundsRate float64 `json:"outOfBoundsRate"`
	QualityRows     int64   `json:"qualityRows"`
	// BeyondMarginRate is what the out-of-bounds rule judges: the values
	// out of bounds on each side where Seen goes further than Margin past
	// Bounds. Values just outside, within the margin, are the tail of the
	// baseline's population. A window knows only how far its most extreme
	// value went, so once one passes the margin every value out of bounds
	// on that side counts; without Seen (agents that do not report it) all
	// of them do. Categorical features have no margin.
	BeyondMarginRate float64 `json:"beyondMarginRate"`
	// Bounds is the baseline's range (numerical features) and Margin how
	// far past either end a value may go before it counts.
	Bounds Range   `json:"bounds,omitzero"`
	Margin float64 `json:"margin,omitempty"`
	// Seen is the range of the window's values, when every message in the
	// window reported one.
	Seen Range `json:"seen,omitzero"`
	// QualityBreached: a rate above its threshold, judged over at least
	// the monitor's minimum quality rows (Thresholds.MinQualityRows).
	QualityBreached bool `json:"qualityBreached"`
	// Which rates breached, for Reason.
	nullBreached, typeBreached, boundsBreached bool
}

// Range is a closed interval of values, in JSON [min, max]; the zero Range
// is none (omitted, or null).
type Range struct {
	Min, Max float64
	Valid    bool
}

// IsZero reports an empty Range (for omitzero).
func (r Range) IsZero() bool { return !r.Valid }

// MarshalJSON writes [min, max], or null.
func (r Range) MarshalJSON() ([]byte, error) {
	if !r.Valid {
		return []byte("null"), nil
	}
	b := append(strconv.AppendFloat([]byte{'['}, r.Min, 'g', -1, 64), ',')
	return append(strconv.AppendFloat(b, r.Max, 'g', -1, 64), ']'), nil
}

// UnmarshalJSON reads [min, max] or null.
func (r *Range) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*r = Range{}
		return nil
	}
	var v [2]float64
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("drift: range: %w", err)
	}
	*r = Range{Min: v[0], Max: v[1], Valid: true}
	return nil
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

// summarize fills DataDrift, PredictionDrift, QualityBreached and Reason;
// t is what the data-quality rates were judged with.
// It runs on every evaluation and a drifting window breaches on most
// features, so Reason is appended in one buffer rather than formatted
// with fmt (a sixth of the evaluation's time when it was); it reads as
//
//	feature "x" normalized_wasserstein_distance 0.123 > 0.1; feature "y" out of bounds: ...
func (v *Verdict) summarize(t *Thresholds) {
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
			b = f.appendQuality(b, t)
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

// appendQuality appends which data-quality rates of the feature breached
// t's thresholds, e.g.
//
//	feature "x" out of bounds: 4% of 250 values outside the baseline's [0.8, 6.1] ± 0.265 margin (seen 0.2–9.7) > 1%
//	feature "y" null rate 2% of 1000 rows > 0%
func (f *FeatureVerdict) appendQuality(b []byte, t *Thresholds) []byte {
	b = strconv.AppendQuote(append(b, "feature "...), f.Name)
	sep := ""
	if f.nullBreached {
		b = appendPct(append(b, " null rate "...), f.NullRate)
		b = strconv.AppendInt(append(b, " of "...), f.QualityRows, 10)
		b = appendPct(append(b, " rows > "...), max(t.NullRate, 0))
		sep = ","
	}
	if f.typeBreached {
		b = appendPct(append(append(b, sep...), " type error rate "...), f.TypeErrorRate)
		b = strconv.AppendInt(append(b, " of "...), f.QualityRows, 10)
		b = appendPct(append(b, " rows > "...), max(t.TypeErrorRate, 0))
		sep = ","
	}
	if f.boundsBreached {
		b = appendPct(append(append(b, sep...), " out of bounds: "...), f.BeyondMarginRate)
		b = strconv.AppendInt(append(b, " of "...), f.Rows, 10)
		if f.Bounds.Valid {
			b = appendG4(append(b, " values outside the baseline's ["...), f.Bounds.Min)
			b = append(appendG4(append(b, ", "...), f.Bounds.Max), ']')
			if f.Margin > 0 {
				b = append(appendG3(append(b, " ± "...), f.Margin), " margin"...)
			}
		} else {
			b = append(b, " values the baseline never saw"...)
		}
		if f.Seen.Valid {
			b = appendG4(append(b, " (seen "...), f.Seen.Min)
			b = append(appendG4(append(b, "–"...), f.Seen.Max), ')')
		}
		b = appendPct(append(b, " > "...), max(t.OutOfBoundsRate, 0))
	}
	return b
}

// appendPct appends a rate as a percentage, to three significant digits.
func appendPct(b []byte, r float64) []byte {
	return append(strconv.AppendFloat(b, r*100, 'g', 3, 64), '%')
}

// appendG4 appends v to four significant digits.
func appendG4(b []byte, v float64) []byte { return strconv.AppendFloat(b, v, 'g', 4, 64) }

// appendG3 appends v as fmt's %.3g does.
func appendG3(b []byte, v float64) []byte { return strconv.AppendFloat(b, v, 'g', 3, 64) }
