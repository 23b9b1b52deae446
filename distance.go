package modelfleet

import "math"

// JensenShannonDistance is the Jensen-Shannon distance, base 2, between two
// histograms (counts or probabilities; each is normalized by its sum), as
// scipy.spatial.distance.jensenshannon(p, q, base=2) and Azure ML compute
// it: the square root of the Jensen-Shannon divergence, between 0 (same)
// and 1 (disjoint). The drift monitor and a release's prediction-shift
// criterion both measure with it.
func JensenShannonDistance(p, q []float64) float64 { return JensenShannonDistanceBase(p, q, 2) }

// JensenShannonDistanceBase is the Jensen-Shannon distance with logarithms
// of the given base (SciPy's default is e).
func JensenShannonDistanceBase(p, q []float64, base float64) float64 {
	var sp, sq float64
	for i := range p {
		sp += p[i]
		sq += q[i]
	}
	var js float64 // divergence in nats: 1/2 KL(p||m) + 1/2 KL(q||m)
	for i := range p {
		pi, qi := p[i]/sp, q[i]/sq
		m := 0.5 * (pi + qi)
		if pi > 0 {
			js += 0.5 * pi * math.Log(pi/m)
		}
		if qi > 0 {
			js += 0.5 * qi * math.Log(qi/m)
		}
	}
	return math.Sqrt(max(js, 0) / math.Log(base))
}
