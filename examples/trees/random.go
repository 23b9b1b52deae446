package trees

import "math/rand/v2"

// Random is an ensemble of n full trees of depth 3 in the given objective
// over three features (a, b, c), for tests: thresholds are float64 values
// in [0, 10) with many digits (not float32 ones), leaves of both signs.
func Random(rng *rand.Rand, objective string, n int) *Ensemble {
	e := &Ensemble{Features: []string{"a", "b", "c"}, Objective: objective}
	for range n {
		t := Tree{Feature: make([]int, 7), Threshold: make([]float64, 7), Left: make([]int, 7), Right: make([]int, 7), Leaf: make([]float64, 8)}
		for i := range 7 {
			t.Feature[i] = rng.IntN(3)
			t.Threshold[i] = 10 * rng.Float64()
			for side, c := range [2]int{2*i + 1, 2*i + 2} {
				if c >= 7 {
					c = ^(c - 7)
				}
				if side == 0 {
					t.Left[i] = c
				} else {
					t.Right[i] = c
				}
			}
		}
		for j := range t.Leaf {
			t.Leaf[j] = rng.NormFloat64()
		}
		e.Trees = append(e.Trees, t)
	}
	return e
}
