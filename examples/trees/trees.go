// Package trees writes one gradient-boosted tree ensemble in the three
// formats the edge runtime loads: LightGBM text, XGBoost JSON and ONNX (an
// ai.onnx.ml TreeEnsembleClassifier or TreeEnsembleRegressor). The examples'
// trainers use it to publish the same model in each format, and
// bench-runtime to compare the formats on the same trees.
//
// The trees are in LightGBM's layout: internal node i sends a row to
// Left[i] when x[Feature[i]] <= Threshold[i], else to Right[i]; a child
// c >= 0 is an internal node, c < 0 is leaf ^c. Node 0 is the root. An
// initial score (LightGBM's boost_from_average) is folded into the leaves
// of the first tree, so the raw score is the plain sum of the trees' leaves.
//
// The three files predict the same within float rounding:
//
//   - LightGBM and the ONNX file (double input, thresholds and leaf
//     weights in double-precision tensors, BRANCH_LEQ) compare and sum in
//     float64 exactly as the ensemble does; the ONNX output is rounded to
//     float32.
//   - XGBoost compares float32(x) < split_condition and sums float32
//     leaves. The split condition is the next float32 above the largest
//     float32 <= Threshold, so every x a float32 holds exactly goes the same
//     way as in LightGBM; a float64 x within one float32 step of a
//     threshold may not.
package trees

import (
	"errors"
	"fmt"
	"math"
)

// Objectives an ensemble may have.
const (
	Binary     = "binary"     // P(class 1) = sigmoid(raw score)
	Regression = "regression" // the raw score (squared error)
)

// Ensemble is a boosted tree ensemble.
type Ensemble struct {
	Features  []string // names, in model order
	Objective string   // Binary or Regression
	Trees     []Tree
}

// Tree is one tree in LightGBM's layout (see the package comment). A tree
// with a single leaf has no internal nodes.
type Tree struct {
	Feature   []int
	Threshold []float64
	Left      []int
	Right     []int
	Leaf      []float64
}

// Predict returns the ensemble's output for one row, as LightGBM computes
// it: the sum of the trees' leaves in float64, through the sigmoid for a
// binary model.
func (e *Ensemble) Predict(x []float64) float64 {
	raw := 0.0
	for i := range e.Trees {
		raw += e.Trees[i].leaf(x)
	}
	if e.Objective == Binary {
		return 1 / (1 + math.Exp(-raw))
	}
	return raw
}

func (t *Tree) leaf(x []float64) float64 {
	if len(t.Feature) == 0 {
		return t.Leaf[0]
	}
	c := 0
	for c >= 0 {
		if x[t.Feature[c]] <= t.Threshold[c] {
			c = t.Left[c]
		} else {
			c = t.Right[c]
		}
	}
	return t.Leaf[^c]
}

// Check returns an error unless e is well formed: a known objective, at
// least one feature and tree, and every tree one binary tree whose arrays
// agree, with finite numbers and features in range.
func (e *Ensemble) Check() error {
	if e.Objective != Binary && e.Objective != Regression {
		return fmt.Errorf("objective %q: want %q or %q", e.Objective, Binary, Regression)
	}
	if len(e.Features) == 0 || len(e.Trees) == 0 {
		return errors.New("want at least one feature and one tree")
	}
	for i := range e.Trees {
		if err := e.Trees[i].check(len(e.Features)); err != nil {
			return fmt.Errorf("tree %d: %w", i, err)
		}
	}
	return nil
}

func (t *Tree) check(features int) error {
	n := len(t.Feature)
	if len(t.Leaf) != n+1 || len(t.Threshold) != n || len(t.Left) != n || len(t.Right) != n {
		return fmt.Errorf("%d leaves, %d features, %d thresholds, %d left and %d right children: want n+1 leaves and n of the others",
			len(t.Leaf), n, len(t.Threshold), len(t.Left), len(t.Right))
	}
	for _, v := range append(append([]float64(nil), t.Leaf...), t.Threshold...) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("value %v is not finite", v)
		}
	}
	if n == 0 {
		return nil
	}
	seenNode, seenLeaf := make([]bool, n), make([]bool, n+1)
	seenNode[0] = true
	for stack := []int{0}; len(stack) > 0; {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if f := t.Feature[i]; f < 0 || f >= features {
			return fmt.Errorf("node %d splits on feature %d of %d", i, f, features)
		}
		for _, c := range [2]int{t.Left[i], t.Right[i]} {
			switch {
			case c >= 0 && (c >= n || seenNode[c]):
				return fmt.Errorf("node %d: child %d out of range or reached twice", i, c)
			case c >= 0:
				seenNode[c] = true
				stack = append(stack, c)
			case ^c >= n+1 || seenLeaf[^c]:
				return fmt.Errorf("node %d: leaf %d out of range or reached twice", i, ^c)
			default:
				seenLeaf[^c] = true
			}
		}
	}
	for l, ok := range seenLeaf {
		if !ok {
			return fmt.Errorf("leaf %d is not reachable", l)
		}
	}
	return nil
}

// nodeID numbers a tree's nodes for XGBoost and ONNX: internal node i is
// i, leaf j is n+j.
func (t *Tree) nodeID(child int) int {
	if child >= 0 {
		return child
	}
	return len(t.Feature) + ^child
}

// splitCondition is XGBoost's float32 split condition for "x <= t": the
// next float32 above the largest float32 not above t.
func splitCondition(t float64) float32 {
	f := float32(t)
	if float64(f) > t {
		f = math.Nextafter32(f, float32(math.Inf(-1)))
	}
	return math.Nextafter32(f, float32(math.Inf(1)))
}
