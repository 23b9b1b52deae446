package drift

import (
	"math"

	"github.com/modelfleet/modelfleet/signals"
)

// Metrics are every drift metric of one feature (or the prediction) over a
// window, against the baseline.
type Metrics struct {
	// NormalizedWasserstein is numerical features' only; 0 for categorical.
	NormalizedWasserstein float64 `json:"normalizedWasserstein"`
	JensenShannon         float64 `json:"jensenShannon"`
	PSI                   float64 `json:"psi"`
	ChiSquared            float64 `json:"chiSquared"`  // the statistic
	ChiSquaredP           float64 `json:"chiSquaredP"` // its p-value
}

// Value returns the metric of that name.
func (m Metrics) Value(name string) float64 {
	switch name {
	case NormalizedWasserstein:
		return m.NormalizedWasserstein
	case JensenShannon:
		return m.JensenShannon
	case PSI:
		return m.PSI
	case ChiSquared:
		return m.ChiSquaredP
	}
	return math.NaN()
}

// reference is one baseline feature prepared so that a window is evaluated
// in one pass over its bins with three logarithms per bin: what depends only
// on the baseline is computed once per baseline, not once per message.
type reference struct {
	f           *signals.FeatureBaseline
	categorical bool
	p           []float64 // baseline share of each bin
	sumPLogP    float64   // sum of p ln p, the baseline's half of the JS divergence
	invP        []float64 // 1/p, 0 where p is 0
	psiB, logB  []float64 // Azure's smoothed shares (c+1)/n and their logs
	loc         []float64 // Wasserstein locations: bin centres (interior bins)
}

func newReference(f *signals.FeatureBaseline) *reference {
	r := &reference{f: f, categorical: f.Categorical()}
	var n float64
	for _, c := range f.Counts {
		n += float64(c)
	}
	k := len(f.Counts)
	r.p, r.invP, r.psiB, r.logB = make([]float64, k), make([]float64, k), make([]float64, k), make([]float64, k)
	for i, c := range f.Counts {
		if n > 0 {
			r.p[i] = float64(c) / n
			r.psiB[i] = (float64(c) + 1) / n
			r.logB[i] = math.Log(r.psiB[i])
		}
		if r.p[i] > 0 {
			r.invP[i] = 1 / r.p[i]
			r.sumPLogP += r.p[i] * math.Log(r.p[i])
		}
	}
	if !r.categorical {
		e := f.Edges
		r.loc = make([]float64, k)
		r.loc[0], r.loc[k-1] = e[0], e[len(e)-1]
		for i := 1; i < k-1; i++ {
			r.loc[i] = (e[i-1] + e[i]) / 2
		}
	}
	return r
}

// evaluate computes every metric of a window's counts (the layout of
// r.f.Counts) and out-of-range sums. ok is false for an empty window.
func (r *reference) evaluate(counts []int64, belowSum, aboveSum float64) (m Metrics, n int64, ok bool) {
	for _, c := range counts {
		n += c
	}
	if n == 0 || len(counts) != len(r.p) {
		return m, n, false
	}
	fn := float64(n)
	inv, logN := 1/fn, math.Log(fn)
	var sumQLogQ, sumMLogM, psi, chi, w1, cumP, cumQ float64
	bins := 0
	last := len(counts) - 1
	for i, c := range counts {
		fc := float64(c)
		p, q := r.p[i], fc*inv
		logC1 := logCount(c + 1)
		if c > 0 {
			sumQLogQ += q * (logCount(c) - logN)
		}
		if mid := 0.5 * (p + q); mid > 0 {
			sumMLogM += mid * lnMid(mid)
		}
		if r.psiB[i] > 0 {
			qq := (fc + 1) * inv
			psi += (qq - r.psiB[i]) * (logC1 - logN - r.logB[i])
		}
		switch e := p * fn; {
		case e == 0 && c == 0:
		case e == 0:
			chi = math.Inf(1)
			bins++
		default:
			chi += (fc - e) * (fc - e) * r.invP[i] * inv // (o-e)²/e with e = p n
			bins++
		}
		if !r.categorical && i < last {
			// The CDFs are steps at each location; between location i
			// and i+1 they differ by |P_i - Q_i|.
			cumP, cumQ = cumP+p, cumQ+q
			w1 += math.Abs(cumP-cumQ) * (r.location(i+1, counts, belowSum, aboveSum) - r.location(i, counts, belowSum, aboveSum))
		}
	}
	js := 0.5*r.sumPLogP + 0.5*sumQLogQ - sumMLogM
	m.JensenShannon = math.Sqrt(max(js, 0) / math.Ln2)
	m.PSI = psi
	m.ChiSquared = chi
	m.ChiSquaredP = chiSquaredSurvival(chi, bins-1)
	if !r.categorical {
		m.NormalizedWasserstein = NormalizedWassersteinDistance(w1, r.f.Std)
	}
	return m, n, true
}

// logTable holds ln(i) for small counts: two of the three logarithms per
// bin are of counts, and math.Log was two thirds of the evaluation's time.
var logTable = func() []float64 {
	t := make([]float64, 1<<13)
	for i := 1; i < len(t); i++ {
		t[i] = math.Log(float64(i))
	}
	return t
}()

// lnMid is math.Log for the mixture shares of the Jensen-Shannon term, the
// one logarithm per bin no table of counts can answer (half of the
// evaluation's time with math.Log). It splits x into 2^e m_j (1+r), where
// m_j = 1+j/1024 (halved, and e one more, from 1.5 up, so that ln m_j is
// near 0 when x is near 1 and nothing cancels) and r < 1/1024, takes
// ln m_j from a table and ln(1+r) from five terms of its series (the sixth
// is below 1e-19): within a few ulps of math.Log (1e-18 next to 1), and
// without its division (TestLnMid holds it to that).
func lnMid(x float64) float64 {
	if x < 0x1p-1022 || x > math.MaxFloat64 || x != x {
		return math.Log(x) // zero, subnormal, infinite or NaN: not shares
	}
	const ln2Hi, ln2Lo = 6.93147180369123816490e-01, 1.90821492927058770002e-10 // as math.Log splits ln 2
	bits := math.Float64bits(x)
	j := bits >> 42 & (lnMidTableSize - 1)
	e := float64(int(bits>>52) - 1023 + int(j/(lnMidTableSize/2)))
	m := math.Float64frombits(bits&(1<<52-1) | 1023<<52) // x/2^exponent, in [1, 2)
	r := (m - (1 + float64(j)/lnMidTableSize)) * lnMidInv[j]
	ln1pR := r * (1 - r*(1.0/2-r*(1.0/3-r*(1.0/4-r*(1.0/5)))))
	return e*ln2Hi + (lnMidLn[j] + (ln1pR + e*ln2Lo))
}

const lnMidTableSize = 1024

// lnMidLn[j] is ln m_j (see lnMid) and lnMidInv[j] 1/(1+j/1024).
var lnMidLn, lnMidInv = func() (ln, inv [lnMidTableSize]float64) {
	for j := range lnMidTableSize {
		m := 1 + float64(j)/lnMidTableSize
		inv[j] = 1 / m
		if j >= lnMidTableSize/2 {
			m /= 2
		}
		ln[j] = math.Log(m)
	}
	return ln, inv
}()

func logCount(c int64) float64 {
	if c < int64(len(logTable)) {
		return logTable[c]
	}
	return math.Log(float64(c))
}

// location is where bin i's mass sits for the Wasserstein distance: its
// centre inside the baseline's range, and the mean of the values counted
// there outside it (the message's BelowSum and AboveSum), so that a shift
// far out of range counts for its full size.
func (r *reference) location(i int, counts []int64, belowSum, aboveSum float64) float64 {
	last := len(counts) - 1
	switch {
	case i == 0 && counts[0] > 0:
		return min(belowSum/float64(counts[0]), r.loc[0])
	case i == last && counts[last] > 0:
		return max(aboveSum/float64(counts[last]), r.loc[last])
	}
	return r.loc[i]
}
