package guest

import "math"

// Rolling keeps the last N values of one signal: the same arithmetic as
// the host's workload.Rolling (running sums, recomputed exactly every 65536
// additions), so a module computes the same features as built-in code.
type Rolling struct {
	buf   []float64
	next  int
	n     int
	sum   float64
	sumSq float64
	adds  int
}

// NewRolling returns a window of n values (at least 1).
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

// Mean of the values held (0 when empty).
func (r *Rolling) Mean() float64 {
	if r.n == 0 {
		return 0
	}
	return r.sum / float64(r.n)
}

// RMS is the root mean square of the values held.
func (r *Rolling) RMS() float64 {
	if r.n == 0 {
		return 0
	}
	return math.Sqrt(math.Max(0, r.sumSq/float64(r.n)))
}

// Peak is the largest absolute value held.
func (r *Rolling) Peak() float64 {
	p := 0.0
	for _, v := range r.values() {
		p = math.Max(p, math.Abs(v))
	}
	return p
}

func (r *Rolling) values() []float64 {
	if r.n < len(r.buf) {
		return r.buf[:r.n]
	}
	return r.buf
}
