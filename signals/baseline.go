package signals

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
)

// BaselineSchemaVersion versions the baseline document (baseline.json).
const BaselineSchemaVersion = "modelfleet.baseline/v1"

// Feature kinds, as Azure ML model monitoring distinguishes them: drift of a
// numerical feature is measured with the normalized Wasserstein distance by
// default, of a categorical one with the Jensen-Shannon distance.
const (
	Numerical   = "numerical"
	Categorical = "categorical"
)

// MaxBins bounds the bins of a numerical baseline feature, and the
// categories of a categorical one.
const MaxBins = 1000

// Baseline is a model's training-data distribution, binned: the fixed bins
// both sides use (the edge counts into them, the cloud compares with the
// reference counts), so a histogram from any site is comparable with the
// baseline and with every other site's.
type Baseline struct {
	SchemaVersion string            `json:"schemaVersion"`
	Rows          int64             `json:"rows"`
	Features      []FeatureBaseline `json:"features"`
	// Prediction is the model's output on the baseline rows, if the
	// baseline was built with a model (WithPredictions).
	Prediction *FeatureBaseline `json:"prediction,omitempty"`

	digest string
	index  map[string]int
}

// FeatureBaseline is one feature's bins and reference counts, in the layout
// of Histogram.Counts.
type FeatureBaseline struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // Numerical or Categorical
	// Edges (numerical): bins+1 ascending edges from the baseline's minimum
	// to its maximum, equally spaced.
	Edges []float64 `json:"edges,omitempty"`
	// Categories (categorical): the values seen, ascending.
	Categories []float64 `json:"categories,omitempty"`
	Counts     []int64   `json:"counts"`
	Mean       float64   `json:"mean"`
	// Std is the sample standard deviation (n-1), by which the Wasserstein
	// distance is normalized, as Azure ML does.
	Std float64 `json:"std"`
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

// BaselineOption changes how BuildBaseline bins.
type BaselineOption func(*baselineConfig)

type baselineConfig struct {
	categorical map[string]bool
	predictions []float64
	task        string // modelfleet.TaskBinary when empty
	classes     int
}

// WithCategorical marks features as categorical: their bins are the
// distinct values seen (at most MaxBins) rather than ranges.
func WithCategorical(names ...string) BaselineOption {
	return func(c *baselineConfig) {
		for _, n := range names {
			c.categorical[n] = true
		}
	}
}

// WithPredictions adds the prediction baseline of a binary classifier: its
// output on each row of the data set, in row order. Outputs within [0, 1]
// (probabilities) are binned over [0, 1], so a shift toward either end
// stays in bounds.
func WithPredictions(p []float64) BaselineOption {
	return func(c *baselineConfig) { c.predictions = p }
}

// WithTaskPredictions adds the prediction baseline of a model of any task:
// its prediction on each row, in row order, binned as the task needs. A
// binary classifier's P(class 1) as WithPredictions; a multiclass model's
// predicted class (0 to classes-1) as a categorical histogram of every
// class, seen on the data or not, so the monitor measures a shift in the
// class mix with the categorical rule (Jensen-Shannon by default); a
// regressor's value over the range it took on the data.
func WithTaskPredictions(task string, classes int, p []float64) BaselineOption {
	return func(c *baselineConfig) { c.predictions, c.task, c.classes = p, task, classes }
}

// BuildBaseline bins a data set: each feature into bins equal-width bins
// between its minimum and maximum (or its distinct values, for categorical
// ones), with the reference counts, mean and standard deviation.
func BuildBaseline(ds *inference.Dataset, bins int, opts ...BaselineOption) (*Baseline, error) {
	if bins < 1 || bins > MaxBins {
		return nil, fmt.Errorf("baseline: %d bins: want 1 to %d", bins, MaxBins)
	}
	if ds == nil || len(ds.X) == 0 {
		return nil, fmt.Errorf("baseline: the data set has no rows")
	}
	cfg := baselineConfig{categorical: map[string]bool{}}
	for _, o := range opts {
		o(&cfg)
	}
	b := &Baseline{SchemaVersion: BaselineSchemaVersion, Rows: int64(len(ds.X))}
	col := make([]float64, len(ds.X))
	for j, name := range ds.Features {
		for i, row := range ds.X {
			col[i] = row[j]
		}
		f, err := buildFeature(name, col, bins, cfg.categorical[name], false)
		if err != nil {
			return nil, err
		}
		b.Features = append(b.Features, f)
	}
	if cfg.predictions != nil {
		if len(cfg.predictions) != len(ds.X) {
			return nil, fmt.Errorf("baseline: %d predictions for %d rows", len(cfg.predictions), len(ds.X))
		}
		f, err := buildPrediction(cfg, bins)
		if err != nil {
			return nil, err
		}
		b.Prediction = &f
	}
	if err := b.init(); err != nil {
		return nil, err
	}
	return b, nil
}

// buildPrediction bins the predictions as their task needs (see
// WithTaskPredictions).
func buildPrediction(cfg baselineConfig, bins int) (FeatureBaseline, error) {
	switch cfg.task {
	case "", modelfleet.TaskBinary:
		return buildFeature("prediction", cfg.predictions, bins, false, true)
	case modelfleet.TaskRegression:
		return buildFeature("prediction", cfg.predictions, bins, false, false)
	case modelfleet.TaskMulticlass:
		if cfg.classes < 2 || cfg.classes > MaxBins {
			return FeatureBaseline{}, fmt.Errorf("baseline: a multiclass model of %d classes: want 2 to %d", cfg.classes, MaxBins)
		}
		for i, v := range cfg.predictions {
			if v != math.Trunc(v) || v < 0 || v >= float64(cfg.classes) {
				return FeatureBaseline{}, fmt.Errorf("baseline: prediction %d is %v: not a class of a %d-class model", i+1, v, cfg.classes)
			}
		}
		f, err := buildFeature("prediction", cfg.predictions, bins, true, false)
		if err != nil {
			return f, err
		}
		// Every class is a category, so a class the data never predicted
		// is counted in its own bin at the sites, not as out of bounds.
		f.Categories = make([]float64, cfg.classes)
		f.Counts = make([]int64, cfg.classes+1)
		for k := range f.Categories {
			f.Categories[k] = float64(k)
		}
		for _, v := range cfg.predictions {
			f.Counts[int(v)]++
		}
		return f, nil
	}
	return FeatureBaseline{}, fmt.Errorf("baseline: task %q: want %q, %q or %q", cfg.task, modelfleet.TaskBinary, modelfleet.TaskMulticlass, modelfleet.TaskRegression)
}

func buildFeature(name string, col []float64, bins int, categorical, probability bool) (FeatureBaseline, error) {
	f := FeatureBaseline{Name: name, Kind: Numerical, Min: math.Inf(1), Max: math.Inf(-1)}
	var s float64
	for _, v := range col {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return f, fmt.Errorf("baseline: feature %q: %v is not a finite number", name, v)
		}
		s += v
		f.Min, f.Max = min(f.Min, v), max(f.Max, v)
	}
	f.Mean = s / float64(len(col))
	var ss float64
	for _, v := range col {
		ss += (v - f.Mean) * (v - f.Mean)
	}
	if len(col) > 1 {
		f.Std = math.Sqrt(ss / float64(len(col)-1))
	}
	if categorical {
		f.Kind = Categorical
		f.Categories = slices.Compact(slices.Sorted(slices.Values(col)))
		if len(f.Categories) > MaxBins {
			return f, fmt.Errorf("baseline: categorical feature %q has %d distinct values: at most %d are allowed", name, len(f.Categories), MaxBins)
		}
		f.Counts = make([]int64, len(f.Categories)+1)
	} else {
		lo, hi := f.Min, f.Max
		if probability && lo >= 0 && hi <= 1 {
			lo, hi = 0, 1
		}
		if lo == hi {
			bins = 1 // a constant: one closed bin [v, v]
		}
		f.Edges = make([]float64, bins+1)
		for i := range f.Edges {
			f.Edges[i] = lo + (hi-lo)*float64(i)/float64(bins)
		}
		f.Edges[bins] = hi // exact, whatever the rounding above
		f.Counts = make([]int64, bins+2)
	}
	for _, v := range col {
		f.Counts[f.Bin(v)]++
	}
	return f, nil
}

// Bin returns the index in Counts that v falls in. NaN is out of bounds
// (callers count it as a null before it gets here).
func (f *FeatureBaseline) Bin(v float64) int {
	if f.Kind == Categorical {
		i, ok := slices.BinarySearch(f.Categories, v)
		if !ok {
			return len(f.Categories)
		}
		return i
	}
	k := len(f.Edges) - 1
	if math.IsNaN(v) {
		return k + 1
	}
	// pos is the first edge >= v: below the range is 0, above it k+1, and
	// inside, v in [e[i-1], e[i]) has pos i (or i-1 with found, v == e[i-1]).
	pos, found := slices.BinarySearch(f.Edges, v)
	switch {
	case !found:
		return pos
	case pos == k:
		return k // the maximum belongs to the last bin, which is closed
	default:
		return pos + 1
	}
}

// Categorical reports whether the feature is categorical.
func (f *FeatureBaseline) Categorical() bool { return f.Kind == Categorical }

// Digest identifies the baseline: "sha256:" and the hex of its canonical
// encoding (encoding/json of the struct). Messages carry it, so the monitor
// never compares counts binned by different edges.
func (b *Baseline) Digest() string { return b.digest }

// Feature returns the baseline of the named feature, or nil.
func (b *Baseline) Feature(name string) *FeatureBaseline {
	if i, ok := b.index[name]; ok {
		return &b.Features[i]
	}
	return nil
}

// FeatureIndex returns the index in Features of the named feature, or -1.
func (b *Baseline) FeatureIndex(name string) int {
	if i, ok := b.index[name]; ok {
		return i
	}
	return -1
}

// DecodeBaseline reads a baseline document (baseline.json) and checks it.
func DecodeBaseline(data []byte) (*Baseline, error) {
	var b Baseline
	if err := json.Unmarshal(data, &b); err != nil {
		// UnmarshalJSON's errors say "baseline:"; the decoder's syntax
		// check runs before it.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		return nil, err
	}
	return &b, nil
}

// UnmarshalJSON reads a baseline and checks it, so a Baseline embedded in
// another document is as valid, indexed and digested as one DecodeBaseline
// returns.
func (b *Baseline) UnmarshalJSON(data []byte) error {
	type plain Baseline // no methods: no recursion
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	if p.SchemaVersion != BaselineSchemaVersion {
		return fmt.Errorf("baseline: schemaVersion %q is not supported: want %q", p.SchemaVersion, BaselineSchemaVersion)
	}
	*b = Baseline(p)
	return b.init()
}

// init validates the baseline, indexes its features and computes the digest.
func (b *Baseline) init() error {
	if len(b.Features) == 0 || len(b.Features) > MaxFeatures {
		return fmt.Errorf("baseline: %d features: want 1 to %d", len(b.Features), MaxFeatures)
	}
	b.index = make(map[string]int, len(b.Features))
	for i := range b.Features {
		f := &b.Features[i]
		if _, dup := b.index[f.Name]; dup || f.Name == "" {
			return fmt.Errorf("baseline: feature name %q is empty or repeated", f.Name)
		}
		b.index[f.Name] = i
		if err := f.check(); err != nil {
			return err
		}
	}
	if b.Prediction != nil {
		if err := b.Prediction.check(); err != nil {
			return err
		}
	}
	enc, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	h := sha256.Sum256(enc)
	b.digest = "sha256:" + hex.EncodeToString(h[:])
	return nil
}

func (f *FeatureBaseline) check() error {
	var want int
	switch f.Kind {
	case Numerical:
		if len(f.Edges) < 2 || len(f.Edges) > MaxBins+1 || !slices.IsSorted(f.Edges) || len(f.Categories) > 0 {
			return fmt.Errorf("baseline: feature %q: want 2 to %d ascending edges and no categories", f.Name, MaxBins+1)
		}
		want = len(f.Edges) + 1
	case Categorical:
		if len(f.Categories) < 1 || len(f.Categories) > MaxBins || len(f.Edges) > 0 ||
			!slices.IsSorted(f.Categories) || len(slices.Compact(slices.Clone(f.Categories))) != len(f.Categories) {
			return fmt.Errorf("baseline: feature %q: want 1 to %d distinct ascending categories and no edges", f.Name, MaxBins)
		}
		want = len(f.Categories) + 1
	default:
		return fmt.Errorf("baseline: feature %q: kind %q is not %q or %q", f.Name, f.Kind, Numerical, Categorical)
	}
	if len(f.Counts) != want {
		return fmt.Errorf("baseline: feature %q: %d counts, want %d", f.Name, len(f.Counts), want)
	}
	if _, ok := sum(f.Counts); !ok {
		return fmt.Errorf("baseline: feature %q: counts must not be negative", f.Name)
	}
	for _, v := range [...]float64{f.Mean, f.Std, f.Min, f.Max} {
		if math.IsNaN(v) || math.IsInf(v, 0) || f.Std < 0 {
			return fmt.Errorf("baseline: feature %q: mean, std, min and max must be finite (std non-negative)", f.Name)
		}
	}
	for _, v := range f.Edges {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("baseline: feature %q: edges must be finite", f.Name)
		}
	}
	return nil
}
