package drift

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/stat"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/signals"
)

// Reference values: SciPy's documented examples where the comment says so,
// the rest computed with SciPy 1.10.1 (Debian's python3-scipy) by the
// script in testdata/reference.py, never by this package.

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol || math.IsNaN(got) {
		t.Errorf("%s = %.17g, want %.17g (±%g)", what, got, want, tol)
	}
}

func TestWassersteinScipy(t *testing.T) {
	// scipy.stats.wasserstein_distance docstring examples.
	near(t, "W([0,1,3],[5,6,8])", Wasserstein([]float64{0, 1, 3}, []float64{5, 6, 8}, nil, nil), 5.0, 1e-12)
	near(t, "W([0,1],[0,1],[3,1],[2,2])", Wasserstein([]float64{0, 1}, []float64{0, 1}, []float64{3, 1}, []float64{2, 2}), 0.25, 1e-12)
	near(t, "W(docstring weighted)", Wasserstein([]float64{3.4, 3.9, 7.5, 7.8}, []float64{4.5, 1.4},
		[]float64{1.4, 0.9, 3.1, 7.2}, []float64{3.2, 3.5}), 4.0781331438047861, 1e-12)
	// Histograms on shared bin centres (computed with SciPy).
	near(t, "W(histograms)", Wasserstein(centres, centres, baseCounts, prodCounts), 0.7731182795698924, 1e-12)
	near(t, "W(same)", Wasserstein([]float64{1, 2, 2, 9}, []float64{9, 2, 1, 2}, nil, nil), 0, 0)
}

var (
	centres    = []float64{0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5}
	baseCounts = []float64{5, 12, 30, 41, 22, 9, 1}
	prodCounts = []float64{1, 4, 18, 35, 40, 20, 6}
)

func TestJensenShannonScipy(t *testing.T) {
	// scipy.spatial.distance.jensenshannon docstring examples.
	near(t, "JS([1,0,0],[0,1,0],2)", modelfleet.JensenShannonDistance([]float64{1, 0, 0}, []float64{0, 1, 0}), 1.0, 1e-12)
	near(t, "JS([1,0],[.5,.5]) base e", modelfleet.JensenShannonDistanceBase([]float64{1, 0}, []float64{0.5, 0.5}, math.E), 0.46450140402245893, 1e-12)
	near(t, "JS([1,0,0],[1,0,0])", modelfleet.JensenShannonDistance([]float64{1, 0, 0}, []float64{1, 0, 0}), 0, 0)
	// Computed with SciPy.
	near(t, "JS([1,0],[.5,.5],2)", modelfleet.JensenShannonDistance([]float64{1, 0}, []float64{0.5, 0.5}), 0.5579230452841438, 1e-12)
	near(t, "JS(counts,2)", modelfleet.JensenShannonDistance(baseCounts, prodCounts), 0.2668545773755449, 1e-12)
	// And gonum's divergence (nats) agrees once normalized and converted.
	p, q := normalized(baseCounts), normalized(prodCounts)
	near(t, "JS vs gonum", modelfleet.JensenShannonDistance(baseCounts, prodCounts), math.Sqrt(stat.JensenShannon(p, q)/math.Ln2), 1e-12)
}

func normalized(xs []float64) []float64 {
	s := sumOf(xs)
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x / s
	}
	return out
}

func TestChiSquaredScipy(t *testing.T) {
	// scipy.stats.chisquare docstring examples.
	obs := []float64{16, 18, 16, 14, 12, 12}
	stat, dof, p := ChiSquaredTest([]float64{1, 1, 1, 1, 1, 1}, obs)
	near(t, "chisquare stat", stat, 2.0, 1e-12)
	near(t, "chisquare p", p, 0.84914503608460956, 1e-12)
	if dof != 5 {
		t.Errorf("dof = %d, want 5", dof)
	}
	stat, _, p = ChiSquaredTest([]float64{16, 16, 16, 16, 16, 8}, obs)
	near(t, "chisquare(f_exp) stat", stat, 3.5, 1e-12)
	near(t, "chisquare(f_exp) p", p, 0.62338762774958223, 1e-12)
	// Azure's use: expected = baseline share times the production total.
	stat, _, p = ChiSquaredTest(baseCounts, prodCounts)
	near(t, "chi stat", stat, 65.08041866342418, 1e-9)
	near(t, "chi p", p, 4.153881240663259e-12, 1e-20)
	// A production count where the baseline has none: certain drift;
	// bins empty on both sides do not count.
	_, dof, p = ChiSquaredTest([]float64{0, 5, 5, 0}, []float64{0, 5, 4, 1})
	if p != 0 || dof != 2 {
		t.Errorf("unseen bin: p = %v, dof = %d, want 0 and 2", p, dof)
	}
}

func TestPSIAzure(t *testing.T) {
	// Azure ML's formula computed with NumPy: ((q+1)/nq - (p+1)/np) * ln(...).
	near(t, "PSI", PopulationStabilityIndex(baseCounts, prodCounts), 0.35691639737812403, 1e-12)
	near(t, "PSI(same)", PopulationStabilityIndex(baseCounts, baseCounts), 0, 1e-15)
}

func TestNormalizedWasserstein(t *testing.T) {
	near(t, "normalized", NormalizedWassersteinDistance(0.5, 2), 0.25, 0)
	near(t, "constant baseline floors at MinStd", NormalizedWassersteinDistance(0.5, 0), 500, 1e-9)
}

// TestReferenceMatchesMetrics holds the monitor's one-pass evaluation to the
// reference functions on the same histogram.
func TestReferenceMatchesMetrics(t *testing.T) {
	f := &signals.FeatureBaseline{
		Name: "x", Kind: signals.Numerical,
		Edges:  []float64{0, 1, 2, 3, 4, 5, 6, 7},
		Counts: []int64{0, 5, 12, 30, 41, 22, 9, 1, 0},
		Std:    1.3,
	}
	prod := []int64{2, 1, 4, 18, 35, 40, 20, 6, 3}
	below, above := -1.5*2, 9.0*3 // two values at -1.5, three at 9
	r := newReference(f)
	got, n, ok := r.evaluate(prod, below, above)
	if !ok || n != 129 {
		t.Fatalf("evaluate: ok=%v n=%d", ok, n)
	}
	locs := append(append([]float64{-1.5}, centres...), 9)
	base, pc := floats(f.Counts), floats(prod)
	near(t, "normalized wasserstein", got.NormalizedWasserstein, Wasserstein(locs, locs, base, pc)/1.3, 1e-12)
	near(t, "jensen-shannon", got.JensenShannon, modelfleet.JensenShannonDistance(base, pc), 1e-12)
	near(t, "psi", got.PSI, PopulationStabilityIndex(base, pc), 1e-12)
	stat, _, p := ChiSquaredTest(base, pc)
	if !math.IsInf(stat, 1) || got.ChiSquaredP != p {
		t.Errorf("chi-squared = %v (p %v), want %v (p %v)", got.ChiSquared, got.ChiSquaredP, stat, p)
	}
	// The same counts as the baseline: no drift by any metric.
	same, _, _ := r.evaluate(f.Counts, 0, 0)
	if same.NormalizedWasserstein != 0 || same.JensenShannon > 1e-7 || math.Abs(same.PSI) > 1e-12 || same.ChiSquaredP < 0.999 {
		t.Errorf("baseline against itself: %+v", same)
	}
}

func floats(xs []int64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}

func BenchmarkEvaluateFeature(b *testing.B) {
	f := &signals.FeatureBaseline{Name: "x", Kind: signals.Numerical, Std: 1}
	for i := 0; i <= 20; i++ {
		f.Edges = append(f.Edges, float64(i))
	}
	f.Counts = make([]int64, 22)
	prod := make([]int64, 22)
	for i := 1; i <= 20; i++ {
		f.Counts[i], prod[i] = int64(100+i*7), int64(120+i*3)
	}
	r := newReference(f)
	for b.Loop() {
		r.evaluate(prod, 0, 0)
	}
}

// lnMid stands in for math.Log in the Jensen-Shannon term: it must agree
// to within a few ulps over every share a window can produce, or within
// 1e-18 where the logarithm is itself about that small (x next to 1), which
// a sum of mid ln mid terms cannot tell.
func TestLnMid(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	xs := []float64{1, 0.5, 0.25, 1 - 1e-16, 1e-300, 0x1p-1022, 1.5, 1 + 1.0/1024, 1 + 1023.0/1024, 1e-9, 0.1, 2, 1e300}
	for range 100000 {
		xs = append(xs, rng.Float64(), math.Exp(-40*rng.Float64()))
	}
	for _, x := range xs {
		got, want := lnMid(x), math.Log(x)
		if d := math.Abs(got - want); d > 4*ulp(want) && d > 1e-18 {
			t.Fatalf("lnMid(%v) = %v, math.Log %v (%v ulps)", x, got, want, d/ulp(want))
		}
	}
	for _, x := range []float64{0, 0x1p-1074, math.Inf(1), math.NaN(), -1} {
		if got, want := lnMid(x), math.Log(x); got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("lnMid(%v) = %v, want math.Log's %v", x, got, want)
		}
	}
}

func ulp(x float64) float64 {
	x = math.Abs(x)
	return math.Nextafter(x, math.Inf(1)) - x
}
