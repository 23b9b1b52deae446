package onnx

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelfleet/modelfleet/inference/forest"
)

// randomEnsemble is trees of random shapes whose branches take every mode
// forest compiles, NaN to either side, over thresholds drawn from values.
func randomEnsemble(rng *rand.Rand, trees, depth, features int, values []float64) *ensemble {
	e := &ensemble{maxFeature: features - 1}
	var grow func(d int) int32
	grow = func(d int) int32 {
		i := int32(len(e.nodes))
		e.nodes = append(e.nodes, treeNode{})
		if d == depth || (d > 0 && rng.IntN(5) == 0) {
			// One weight per leaf, its node's index: which leaf was
			// reached shows in the weights.
			w := int32(len(e.weights))
			e.weights = append(e.weights, treeWeight{0, float64(i)})
			e.nodes[i] = treeNode{mode: leaf, lo: w, hi: w + 1}
			return i
		}
		n := treeNode{mode: uint8(branchLEQ + rng.IntN(4)), missingTrue: rng.IntN(2) == 0,
			feature: rng.IntN(features), value: values[rng.IntN(len(values))]}
		n.t, n.f = grow(d+1), grow(d+1)
		e.nodes[i] = n
		return i
	}
	for range trees {
		e.roots = append(e.roots, grow(0))
	}
	return e
}

// leavesOf is the weights of the leaf each tree reaches, through each (the
// fast walk when compiled) and through leaf; a leaf's weights are its node
// index (randomEnsemble).
func leavesOf(e *ensemble, x []float64) (fast, walked []float64) {
	e.each(x, func(ws []treeWeight) { fast = append(fast, ws[0].w) })
	for _, r := range e.roots {
		l := e.leaf(r, x)
		walked = append(walked, e.weights[l.lo].w)
	}
	return fast, walked
}

func TestFastWalkAgreesWithTheWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	values := []float64{0, math.Copysign(0, -1), 1, -1, 0.5, math.Inf(1), math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64}
	for range 20 {
		values = append(values, float64(float32(rng.NormFloat64())))
	}
	rowValues := append([]float64{math.NaN(), math.Inf(-1)}, values...)
	for trial := range 40 {
		features := 1 + rng.IntN(6)
		e := randomEnsemble(rng, 1+rng.IntN(70), rng.IntN(8), features, values)
		if e.compiled() == nil {
			t.Fatalf("trial %d: an ensemble of LEQ, LT, GTE and GT branches did not compile", trial)
		}
		x := make([]float64, features+rng.IntN(3)) // wider rows than the trees read, too
		for range 300 {
			for i := range x {
				x[i] = rowValues[rng.IntN(len(rowValues))]
			}
			fast, walked := leavesOf(e, x)
			want := 0.0
			for k := range walked {
				if fast[k] != walked[k] {
					t.Fatalf("trial %d row %v tree %d: the fast walk reached node %v, the walk %v", trial, x, k, fast[k], walked[k])
				}
				want += walked[k]
			}
			s, has := []float64{0}, []bool{false}
			if e.sum(x, s, has); s[0] != want || !has[0] {
				t.Fatalf("trial %d row %v: sum %v, the walked leaves' weights add to %v", trial, x, s[0], want)
			}
		}
	}
}

// TestWhatDoesNotCompileKeepsTheWalk: a tree with a branch no threshold
// expresses is walked by leaf, beside one that compiles.
func TestWhatDoesNotCompileKeepsTheWalk(t *testing.T) {
	for name, n := range map[string]treeNode{
		"BRANCH_EQ":       {mode: branchEQ, value: 1},
		"BRANCH_NEQ":      {mode: branchNEQ, value: 1},
		"BRANCH_LT -Inf":  {mode: branchLT, value: math.Inf(-1)},
		"BRANCH_GTE -Inf": {mode: branchGTE, value: math.Inf(-1)},
		"BRANCH_LEQ NaN":  {mode: branchLEQ, value: math.NaN()},
	} {
		n.t, n.f = 1, 2
		e := &ensemble{nodes: []treeNode{n, {mode: leaf, lo: 0, hi: 1}, {mode: leaf, lo: 1, hi: 2},
			{mode: branchLEQ, value: 1, t: 4, f: 5}, {mode: leaf, lo: 2, hi: 3}, {mode: leaf, lo: 3, hi: 4}},
			roots: []int32{0, 3}, maxFeature: 0, weights: []treeWeight{{0, 1}, {0, 2}, {0, 4}, {0, 5}}}
		if e.compiled() == nil {
			t.Fatalf("%s: nothing compiled", name)
		}
		walkedItself := make([]int32, 2)
		e.fast.Leaves([]float64{0}, 0, walkedItself)
		if walkedItself[0] != forest.WalkItself || walkedItself[1] == forest.WalkItself {
			t.Errorf("%s: leaf IDs %v, want the first tree walked by leaf and the second not", name, walkedItself)
		}
		for _, v := range []float64{0, 1, 2, math.NaN(), math.Inf(-1)} {
			fast, walked := leavesOf(e, []float64{v})
			want := 0.0
			for k := range walked {
				if fast[k] != walked[k] {
					t.Errorf("%s at %v tree %d: each and leaf disagree", name, v, k)
				}
				want += walked[k]
			}
			// sum too, which adds a one-target ensemble's weights itself.
			s, has := []float64{0}, []bool{false}
			if e.sum([]float64{v}, s, has); s[0] != want || !has[0] {
				t.Errorf("%s at %v: sum %v (%v), the walk %v", name, v, s[0], has[0], want)
			}
		}
	}
}

// TestGoldenTreesCompile: the tree ensembles of the golden tests (every
// mode, EQ and NEQ in some trees) take the fast walk, but for the trees
// with EQ or NEQ branches.
func TestGoldenTreesCompile(t *testing.T) {
	files, _ := filepath.Glob("../testdata/onnx/golden/*.onnx")
	trees := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Compile(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range p.nodes {
			var e *ensemble
			switch k := c.k.(type) {
			case *treeRegressor:
				e = k.ensemble
			case *treeClassifier:
				e = k.ensemble
			default:
				continue
			}
			trees++
			if e.compiled() == nil {
				t.Errorf("%s: node %q did not compile for the fast walk", filepath.Base(f), c.node.Name)
			}
		}
	}
	if trees < 3 {
		t.Fatalf("found %d tree ensembles in %d golden files, want at least 3", trees, len(files))
	}
}
