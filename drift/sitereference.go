package drift

import (
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
	return siteRefsFrom(l, a.counts), true
}

// siteRefsFrom makes the references of a window's counts (in layout l).
func siteRefsFrom(l *layout, counts []int64) []*reference {
	refs := make([]*reference, len(l.refs))
	for h, r := range l.refs {
		off := l.offsets[h]
		f := *r.f // the baseline's bins, kind and standard deviation
		f.Counts = slices.Clone(counts[off : off+len(r.f.Counts)])
		refs[h] = newReference(&f)
	}
	return refs
}
