package drift

import (
	"fmt"
	"math"
	"time"

	"github.com/modelfleet/modelfleet/queue"
	"github.com/modelfleet/modelfleet/signals"
)

// Dead-letter reasons the monitor adds to signals' decode reasons.
const (
	ReasonUnknownBaseline  = "UnknownBaseline"
	ReasonBaselineMismatch = "BaselineMismatch"
)

// layout is how a baseline's histograms lie in an agg's arrays: every
// baseline feature in baseline order, then the prediction.
type layout struct {
	base    *signals.Baseline // nil: counts only, no histograms
	digest  string
	refs    []*reference
	offsets []int
	pred    int // index in refs of the prediction, -1 if none
	size    int // total counts
	// t is what the version is judged with: the monitor's thresholds with
	// the version's own (ModelThresholds), defaults resolved.
	t Thresholds
}

func newLayout(b *signals.Baseline) *layout {
	l := &layout{base: b, pred: -1}
	if b == nil {
		return l
	}
	l.digest = b.Digest()
	add := func(f *signals.FeatureBaseline) {
		l.refs = append(l.refs, newReference(f))
		l.offsets = append(l.offsets, l.size)
		l.size += len(f.Counts)
	}
	for i := range b.Features {
		add(&b.Features[i])
	}
	if b.Prediction != nil {
		l.pred = len(l.refs)
		add(b.Prediction)
	}
	return l
}

// agg is a sum of signal messages in a layout: one slot of a series'
// window, the window's running total, or one incoming message.
type agg struct {
	messages                           int
	start, end                         time.Time // earliest window start, latest window end
	requests, scored, errors, rejected int64
	latency                            [signals.NumLatencyBuckets]int64
	counts                             []int64
	below, above                       []float64 // per histogram
	nulls, typeErrors                  []int64   // per histogram
	// lo and hi are the range of each histogram's values (+Inf and -Inf
	// when none is known), and unranged counts the values of messages that
	// reported none. A range cannot be subtracted: after a slot leaves the
	// window, the series recomputes the window's from the slots it keeps.
	lo, hi   []float64
	unranged []int64
}

func newAgg(l *layout) agg {
	n := len(l.refs)
	a := agg{
		counts: make([]int64, l.size),
		below:  make([]float64, n), above: make([]float64, n),
		nulls: make([]int64, n), typeErrors: make([]int64, n),
		lo: make([]float64, n), hi: make([]float64, n), unranged: make([]int64, n),
	}
	a.clearRange()
	return a
}

func (a *agg) clearRange() {
	for i := range a.lo {
		a.lo[i], a.hi[i] = math.Inf(1), math.Inf(-1)
	}
}

// widenRange merges b's value ranges into a's.
func (a *agg) widenRange(b *agg) {
	for i := range a.lo {
		a.lo[i], a.hi[i] = min(a.lo[i], b.lo[i]), max(a.hi[i], b.hi[i])
	}
}

func (a *agg) reset() {
	a.messages, a.start, a.end = 0, time.Time{}, time.Time{}
	a.requests, a.scored, a.errors, a.rejected = 0, 0, 0, 0
	clear(a.latency[:])
	clear(a.counts)
	clear(a.below)
	clear(a.above)
	clear(a.nulls)
	clear(a.typeErrors)
	a.clearRange()
	clear(a.unranged)
}

// add adds b times sign (+1 or -1) into a. Window bounds are recomputed by
// the caller after a subtraction.
func (a *agg) add(b *agg, sign int64) {
	a.messages += int(sign) * b.messages
	a.requests += sign * b.requests
	a.scored += sign * b.scored
	a.errors += sign * b.errors
	a.rejected += sign * b.rejected
	for i, n := range b.latency {
		a.latency[i] += sign * n
	}
	for i, n := range b.counts {
		a.counts[i] += sign * n
	}
	f := float64(sign)
	for i := range b.below {
		a.below[i] += f * b.below[i]
		a.above[i] += f * b.above[i]
		a.nulls[i] += sign * b.nulls[i]
		a.typeErrors[i] += sign * b.typeErrors[i]
		a.unranged[i] += sign * b.unranged[i]
	}
	if sign > 0 {
		a.widen(b.start, b.end)
		a.widenRange(b)
	}
}

func (a *agg) widen(start, end time.Time) {
	if a.start.IsZero() || start.Before(a.start) {
		a.start = start
	}
	if end.After(a.end) {
		a.end = end
	}
}

func (a *agg) copyFrom(b *agg) {
	counts, below, above, nulls, typeErrors := a.counts, a.below, a.above, a.nulls, a.typeErrors
	lo, hi, unranged := a.lo, a.hi, a.unranged
	*a = *b
	a.counts, a.below, a.above, a.nulls, a.typeErrors = counts, below, above, nulls, typeErrors
	a.lo, a.hi, a.unranged = lo, hi, unranged
	copy(a.counts, b.counts)
	copy(a.below, b.below)
	copy(a.above, b.above)
	copy(a.nulls, b.nulls)
	copy(a.typeErrors, b.typeErrors)
	copy(a.lo, b.lo)
	copy(a.hi, b.hi)
	copy(a.unranged, b.unranged)
}

// fromMessage sets a to one message. A histogram the baseline does not
// have, or whose shape differs from the baseline's, means the site binned
// with something else: no redelivery can fix that.
func (a *agg) fromMessage(l *layout, m *signals.Message) error {
	a.reset()
	a.messages = 1
	a.start, a.end = m.WindowStart, m.WindowEnd
	a.requests, a.scored, a.errors, a.rejected = m.Requests, m.Scored, m.Errors, m.Rejected
	copy(a.latency[:], m.LatencyMs)
	for i := range m.Features {
		f := &m.Features[i]
		// Sites send features in baseline order: try the same position first.
		j := i
		if j >= len(l.base.Features) || l.base.Features[j].Name != f.Name {
			if j = l.base.FeatureIndex(f.Name); j < 0 {
				return mismatch(m, "feature %q is not in the baseline", f.Name)
			}
		}
		if err := a.setHist(l, j, &f.Histogram, m); err != nil {
			return err
		}
		a.nulls[j], a.typeErrors[j] = f.Nulls, f.TypeErrors
	}
	if m.Prediction != nil {
		if l.pred < 0 {
			return mismatch(m, "the baseline has no prediction histogram")
		}
		return a.setHist(l, l.pred, m.Prediction, m)
	}
	return nil
}

func (a *agg) setHist(l *layout, h int, hist *signals.Histogram, m *signals.Message) error {
	want := len(l.refs[h].f.Counts)
	if len(hist.Counts) != want {
		return mismatch(m, "histogram %q has %d counts, the baseline's has %d", l.refs[h].f.Name, len(hist.Counts), want)
	}
	copy(a.counts[l.offsets[h]:], hist.Counts)
	a.below[h], a.above[h] = hist.BelowSum, hist.AboveSum
	if lo, hi, ok := hist.Range(); ok {
		a.lo[h], a.hi[h] = lo, hi
	} else {
		a.unranged[h] = m.Scored // every histogram counts every scored row
	}
	return nil
}

func mismatch(m *signals.Message, format string, args ...any) error {
	return queue.PermanentReason(ReasonBaselineMismatch, fmt.Errorf("signal %q (%s %s:%s): "+format,
		append([]any{m.MessageID, m.Site, m.Model, m.Version}, args...)...))
}
