package main

import (
	"math/rand/v2"
	"testing"
)

// TestFormatsAgree: the generator's three files of the same trees load in
// the edge runtime and predict what the ensemble does on held-out rows, so
// a broken writer fails here rather than in the benchmark.
func TestFormatsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 0))
	a, err := write(ensemble(rng, 20, 6))
	if err != nil {
		t.Fatal(err)
	}
	_, worst, err := a.agree(rows(rng, 500))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("largest difference from the ensemble: %v", worst)
}
