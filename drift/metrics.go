// Package drift measures how far what a model sees in production has moved
// from its training baseline, with Azure ML model monitoring's metrics and
// defaults, and turns the edge's signal messages into verdicts (Monitor).
//
// The metric functions here are the reference implementations, written to
// match SciPy's (scipy.stats.wasserstein_distance,
// scipy.spatial.distance.jensenshannon, scipy.stats.chisquare) and Azure
// ML's model monitoring components (PSI with add-one smoothing, Wasserstein
// normalized by the baseline's standard deviation); the tests hold them to
// SciPy's documented examples and to values computed with SciPy. The
// Monitor evaluates with a faster equivalent (evaluate.go) that the tests
// hold to these.
package drift

import (
	"math"
	"sort"

	"gonum.org/v1/gonum/stat/distuv"
)

// Metric names, as Azure ML model monitoring spells them.
const (
	NormalizedWasserstein = "normalized_wasserstein_distance"
	JensenShannon         = "jensen_shannon_distance"
	PSI                   = "population_stability_index"
	ChiSquared            = "pearsons_chi_squared_test" // a p-value: drift when below the threshold
)

// MinStd is the floor of the standard deviation the Wasserstein distance is
// divided by: Azure ML's (max(std, 0.001)), so a constant baseline feature
// does not divide by zero.
const MinStd = 0.001

// Wasserstein is the first Wasserstein (earth mover's) distance between two
// one-dimensional distributions given by values and weights, as
// scipy.stats.wasserstein_distance(u, v, uw, vw): nil weights weigh every
// value 1. It is the area between the two cumulative distribution
// functions. Weights must be non-negative with positive sums.
func Wasserstein(u, v, uw, vw []float64) float64 {
	us, vs := sorted(u, uw), sorted(v, vw)
	uTotal, vTotal := total(us), total(vs)
	var d, uc, vc float64
	i, j := 0, 0
	prev := math.Inf(-1)
	for i < len(us) || j < len(vs) {
		// The next point where either CDF steps.
		x := math.Inf(1)
		if i < len(us) {
			x = us[i].x
		}
		if j < len(vs) && vs[j].x < x {
			x = vs[j].x
		}
		if !math.IsInf(prev, -1) {
			d += math.Abs(uc/uTotal-vc/vTotal) * (x - prev)
		}
		for i < len(us) && us[i].x == x {
			uc += us[i].w
			i++
		}
		for j < len(vs) && vs[j].x == x {
			vc += vs[j].w
			j++
		}
		prev = x
	}
	return d
}

type point struct{ x, w float64 }

func sorted(xs, ws []float64) []point {
	ps := make([]point, len(xs))
	for i, x := range xs {
		ps[i] = point{x, 1}
		if ws != nil {
			ps[i].w = ws[i]
		}
	}
	sort.Slice(ps, func(a, b int) bool { return ps[a].x < ps[b].x })
	return ps
}

func total(ps []point) float64 {
	var t float64
	for _, p := range ps {
		t += p.w
	}
	return t
}

// NormalizedWassersteinDistance is Azure ML's normalized Wasserstein
// distance: Wasserstein(baseline, production) divided by the baseline's
// sample standard deviation (at least MinStd). It is in units of that
// standard deviation: 0.1, Azure's default threshold, is a shift of a
// tenth of one.
func NormalizedWassersteinDistance(distance, baselineStd float64) float64 {
	return distance / max(baselineStd, MinStd)
}

// PopulationStabilityIndex is PSI as Azure ML computes it: with one added to
// every bin's count, so that an empty bin does not make it infinite,
// divided by the uncorrected totals:
// sum over bins of (q'-p') ln(q'/p'), p' = (p+1)/sum(p), q' = (q+1)/sum(q).
func PopulationStabilityIndex(baseline, production []float64) float64 {
	nb, np := sumOf(baseline), sumOf(production)
	var psi float64
	for i := range baseline {
		b, p := (baseline[i]+1)/nb, (production[i]+1)/np
		psi += (p - b) * math.Log(p/b)
	}
	return psi
}

// ChiSquaredTest is Pearson's chi-squared goodness-of-fit test of the
// production counts against the baseline's proportions, as Azure ML runs it
// (scipy.stats.chisquare(observed, expected) with expected = baseline share
// times the production total). It returns the statistic, the degrees of
// freedom and the p-value; drift is a p-value below the threshold. Bins
// empty on both sides are left out (SciPy would return NaN; Azure's
// categories are the union of both sides', so it never has such a bin); a
// production count where the baseline has none makes the statistic
// infinite and the p-value 0.
func ChiSquaredTest(baseline, production []float64) (stat float64, dof int, p float64) {
	nb, np := sumOf(baseline), sumOf(production)
	bins := 0
	for i := range baseline {
		o := production[i]
		e := baseline[i] / nb * np
		switch {
		case e == 0 && o == 0:
			continue
		case e == 0:
			stat = math.Inf(1)
		default:
			stat += (o - e) * (o - e) / e
		}
		bins++
	}
	return stat, bins - 1, chiSquaredSurvival(stat, bins-1)
}

// chiSquaredSurvival is the upper tail of the chi-squared distribution with
// dof degrees of freedom at stat, by gonum's regularized incomplete gamma.
func chiSquaredSurvival(stat float64, dof int) float64 {
	switch {
	case dof <= 0:
		return 1
	case math.IsInf(stat, 1):
		return 0
	}
	return distuv.ChiSquared{K: float64(dof)}.Survival(stat)
}

func sumOf(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s
}

// categoricalMetric reports whether a metric applies to a categorical
// histogram (every metric but the Wasserstein distance, which needs
// ordered values).
func categoricalMetric(name string) bool { return name != NormalizedWasserstein }
