package workload

import "math"

// Rolling keeps the last N values of one signal for windowed features. It
// keeps running sums so each statistic over the window costs O(1), except
// Peak, which is O(N) (N is small: tens to hundreds of samples).
type Rolling struct {
	buf   []float64
	next  int
	n     int
	sum   float64
	sumSq float64
	adds  int // since the last exact recomputation
}

// NewRolling returns a window of n values.
func NewRolling(n int) *Rolling {
	if n < 1 {
		n = 1
	}
	return &Rolling{buf: make([]float64, n)}
}

// Add pushes v, dropping the oldest value once the window is full.
func (r *Rolling) Add(v float64) {
	if r.n == len(r.buf) {
		old := r.buf[r.next]
		r.sum -= old
		r.sumSq -= old * old
	} else {
		r.n++
	}
	r.buf[r.next] = v
	r.next = (r.next + 1) % len(r.buf)
	r.sum += v
	r.sumSq += v * v
	// Running sums drift with rounding over millions of samples; recompute
	// them exactly now and then.
	if r.adds++; r.adds >= 1<<16 {
		r.adds, r.sum, r.sumSq = 0, 0, 0
		for _, x := range r.values() {
			r.sum += x
			r.sumSq += x * x
		}
	}
}

// Full reports whether the window holds N values.
func (r *Rolling) Full() bool { return r.n == len(r.buf) }

// Len is the number of values held.
func (r *Rolling) Len() int { return r.n }

// Mean of the values held (0 when empty).
func (r *Rolling) Mean() float64 {
	if r.n == 0 {
		return 0
	}
	return r.sum / float64(r.n)
}

// RMS is the root mean square: for a vibration velocity signal, the
// ISO 10816 severity figure.
func (r *Rolling) RMS() float64 {
	if r.n == 0 {
		return 0
	}
	return math.Sqrt(math.Max(0, r.sumSq/float64(r.n)))
}

// Std is the population standard deviation.
func (r *Rolling) Std() float64 {
	if r.n == 0 {
		return 0
	}
	m := r.Mean()
	return math.Sqrt(math.Max(0, r.sumSq/float64(r.n)-m*m))
}

// Peak is the largest absolute value held.
func (r *Rolling) Peak() float64 {
	p := 0.0
	for _, v := range r.values() {
		p = math.Max(p, math.Abs(v))
	}
	return p
}

// Last is the newest value (0 when empty).
func (r *Rolling) Last() float64 {
	if r.n == 0 {
		return 0
	}
	return r.buf[(r.next-1+len(r.buf))%len(r.buf)]
}

func (r *Rolling) values() []float64 {
	if r.n < len(r.buf) {
		return r.buf[:r.n]
	}
	return r.buf
}

// Standardize scales v to zero mean and unit variance, for models trained on
// standardized features.
func Standardize(v, mean, std float64) float64 {
	if std == 0 {
		return 0
	}
	return (v - mean) / std
}

// MinMax scales v from [lo, hi] to [0, 1], clamped.
func MinMax(v, lo, hi float64) float64 {
	if hi <= lo {
		return 0
	}
	return math.Min(1, math.Max(0, (v-lo)/(hi-lo)))
}
