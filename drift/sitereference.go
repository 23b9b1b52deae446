package drift

import (
	"encoding/json"
	"math"
	"slices"
)

// What a window's distributions are compared with (Options.Reference).
const (
	// ReferenceTraining compares with the version's training baseline:
	// Azure ML model monitoring's default. Right when every site sees the
	// population the model was trained on.
	ReferenceTraining = "training"
	// ReferenceSite compares each site with its own first full window of
	// the version (Azure ML's "recent production data" reference, per
	// site). A site runs a handful of machines, whose ages, loads and
	// speeds never look like the whole training population; against the
	// training baseline it would drift forever. Against itself it drifts
	// when its inputs change. The training baseline still gives the bins,
	// the data-quality bounds and the scale of the Wasserstein distance.
	ReferenceSite = "site"
)

// siteReference builds the references of a site's window: the window's
// counts over the baseline's bins, normalised by the baseline's standard
// deviations so that a threshold means the same as against the training
// data. ok is false while the window cannot be a reference yet: too few
// rows, or shorter than half the lookback.
func (m *Monitor) siteReference(l *layout, a *agg) (refs []*reference, ok bool) {
	if a.scored < m.opts.MinRows || a.end.Sub(a.start) < m.opts.Lookback/2 {
		return nil, false
	}
	refs = make([]*reference, len(l.refs))
	for h, r := range l.refs {
		off := l.offsets[h]
		f := *r.f // the baseline's bins, kind and standard deviation
		f.Counts = slices.Clone(a.counts[off : off+len(r.f.Counts)])
		refs[h] = newReference(&f)
	}
	return refs, true
}

// MarshalJSON writes the metrics with non-finite values (a chi-squared
// statistic is +Inf when the window fills a bin the reference never saw)
// as null, since JSON has no infinity.
func (m Metrics) MarshalJSON() ([]byte, error) {
	finite := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	return json.Marshal(struct {
		NormalizedWasserstein *float64 `json:"normalizedWasserstein"`
		JensenShannon         *float64 `json:"jensenShannon"`
		PSI                   *float64 `json:"psi"`
		ChiSquared            *float64 `json:"chiSquared"`
		ChiSquaredP           *float64 `json:"chiSquaredP"`
	}{finite(m.NormalizedWasserstein), finite(m.JensenShannon), finite(m.PSI), finite(m.ChiSquared), finite(m.ChiSquaredP)})
}

// UnmarshalJSON reads what MarshalJSON writes (null as 0).
func (m *Metrics) UnmarshalJSON(b []byte) error {
	var p struct {
		NormalizedWasserstein, JensenShannon, PSI, ChiSquared, ChiSquaredP *float64
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	get := func(v *float64) float64 {
		if v == nil {
			return 0
		}
		return *v
	}
	*m = Metrics{get(p.NormalizedWasserstein), get(p.JensenShannon), get(p.PSI), get(p.ChiSquared), get(p.ChiSquaredP)}
	return nil
}
