package signals

import (
	"maps"
	"math"
	"slices"
	"time"
)

// layout maps a model version's feature row onto its baseline: rowToHist[i]
// is the histogram that feature i of the row (in the model's order) is
// counted in, or -1 when the baseline has no such feature. Histograms are
// numbered in baseline order, the prediction last.
type layout struct {
	base      *Baseline
	rowToHist []int
	names     []string // the row's feature names, for rejected rows
	hists     []*FeatureBaseline
	offsets   []int // start of each histogram in window.counts
	pred      int   // histogram index of the prediction, -1 if none
}

func newLayout(base *Baseline, names []string) *layout {
	l := &layout{base: base, names: slices.Clone(names), pred: -1}
	if base == nil {
		return l
	}
	used := map[string]int{}
	for _, n := range names {
		if f := base.Feature(n); f != nil {
			used[n] = 0
		}
	}
	// Histograms in baseline order, restricted to the features the model
	// sends, so messages list features in one stable order.
	n := 0
	for i := range base.Features {
		f := &base.Features[i]
		if _, ok := used[f.Name]; ok {
			used[f.Name] = len(l.hists)
			l.hists = append(l.hists, f)
			l.offsets = append(l.offsets, n)
			n += len(f.Counts)
		}
	}
	l.rowToHist = make([]int, len(names))
	for i, name := range names {
		l.rowToHist[i] = -1
		if j, ok := used[name]; ok {
			l.rowToHist[i] = j
		}
	}
	if base.Prediction != nil {
		l.pred = len(l.hists)
		l.hists = append(l.hists, base.Prediction)
		l.offsets = append(l.offsets, n)
	}
	return l
}

// numFeatures is the number of feature histograms (the prediction excluded).
func (l *layout) numFeatures() int {
	if l.pred >= 0 {
		return len(l.hists) - 1
	}
	return len(l.hists)
}

func (l *layout) numCounts() int {
	if len(l.hists) == 0 {
		return 0
	}
	last := len(l.hists) - 1
	return l.offsets[last] + len(l.hists[last].Counts)
}

// window accumulates one model version's figures. It is guarded by its
// series' mutex.
type window struct {
	requests, scored, errors, rejected int64
	codes                              map[string]int64
	latency                            [NumLatencyBuckets]int64
	latencySum                         float64   // seconds; local /metrics only
	counts                             []int64   // every histogram's counts, back to back
	sums, below, above                 []float64 // per histogram
	lo, hi                             []float64 // per histogram: the values' range; +Inf, -Inf when none
	nulls, typeErrors                  []int64   // per feature histogram
}

func newWindow(l *layout) *window {
	n := len(l.hists)
	w := &window{
		codes:  map[string]int64{},
		counts: make([]int64, l.numCounts()),
		sums:   make([]float64, n), below: make([]float64, n), above: make([]float64, n),
		lo: make([]float64, n), hi: make([]float64, n),
		nulls: make([]int64, n), typeErrors: make([]int64, n),
	}
	w.clearRange()
	return w
}

func (w *window) clearRange() {
	for i := range w.lo {
		w.lo[i], w.hi[i] = math.Inf(1), math.Inf(-1)
	}
}

func (w *window) reset() {
	w.requests, w.scored, w.errors, w.rejected = 0, 0, 0, 0
	clear(w.codes)
	clear(w.latency[:])
	w.latencySum = 0
	clear(w.counts)
	clear(w.sums)
	clear(w.below)
	clear(w.above)
	w.clearRange()
	clear(w.nulls)
	clear(w.typeErrors)
}

// addTo adds w into t (same layout).
func (w *window) addTo(t *window) {
	t.requests += w.requests
	t.scored += w.scored
	t.errors += w.errors
	t.rejected += w.rejected
	for c, n := range w.codes {
		t.codes[c] += n
	}
	for i, n := range w.latency {
		t.latency[i] += n
	}
	t.latencySum += w.latencySum
	for i, n := range w.counts {
		t.counts[i] += n
	}
	for i := range w.sums {
		t.sums[i] += w.sums[i]
		t.below[i] += w.below[i]
		t.above[i] += w.above[i]
		t.lo[i], t.hi[i] = min(t.lo[i], w.lo[i]), max(t.hi[i], w.hi[i])
		t.nulls[i] += w.nulls[i]
		t.typeErrors[i] += w.typeErrors[i]
	}
}

// observe counts value v in histogram h. A NaN (no vectorizer produces
// one) is counted out of bounds and left out of the sums, which must stay
// finite.
func (w *window) observe(l *layout, h int, v float64) {
	f := l.hists[h]
	b := f.Bin(v)
	w.counts[l.offsets[h]+b]++
	if math.IsNaN(v) {
		return
	}
	w.sums[h] += v
	w.lo[h], w.hi[h] = min(w.lo[h], v), max(w.hi[h], v)
	if f.Kind == Numerical {
		switch b {
		case 0:
			w.below[h] += v
		case len(f.Counts) - 1:
			w.above[h] += v
		}
	}
}

// latencyBucket is the index in LatencyMs of a request that took d.
func latencyBucket(d time.Duration) int {
	ms := float64(d) / float64(time.Millisecond)
	for i, b := range LatencyBoundsMs {
		if ms <= b {
			return i
		}
	}
	return len(LatencyBoundsMs)
}

// message renders a closed window.
func (w *window) message(site, model, version string, l *layout, start, end time.Time) Message {
	m := Message{
		SchemaVersion: SchemaVersion,
		MessageID:     MessageID(site, model, version, start),
		Site:          site, Model: model, Version: version,
		WindowStart: start, WindowEnd: end,
		Requests: w.requests, Scored: w.scored, Errors: w.errors, Rejected: w.rejected,
		LatencyMs: slices.Clone(w.latency[:]),
	}
	if len(w.codes) > 0 {
		m.ErrorCodes = maps.Clone(w.codes)
	}
	if l.base == nil || len(l.hists) == 0 {
		return m
	}
	m.Baseline = l.base.Digest()
	hist := func(h int) Histogram {
		off := l.offsets[h]
		hg := Histogram{
			Counts: slices.Clone(w.counts[off : off+len(l.hists[h].Counts)]),
			Sum:    w.sums[h], BelowSum: w.below[h], AboveSum: w.above[h],
		}
		// Only finite values are counted in the range: ±Inf (which no
		// vectorizer produces) would not encode.
		if lo, hi := w.lo[h], w.hi[h]; lo <= hi && !math.IsInf(lo, 0) && !math.IsInf(hi, 0) {
			r := [2]float64{lo, hi}
			hg.Min, hg.Max = &r[0], &r[1]
		}
		return hg
	}
	for h := range l.numFeatures() {
		m.Features = append(m.Features, FeatureHistogram{
			Name: l.hists[h].Name, Histogram: hist(h),
			Nulls: w.nulls[h], TypeErrors: w.typeErrors[h],
		})
	}
	if l.pred >= 0 {
		p := hist(l.pred)
		m.Prediction = &p
	}
	return m
}
