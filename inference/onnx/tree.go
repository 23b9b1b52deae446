package onnx

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/modelfleet/modelfleet/inference/forest"
)

// TreeEnsembleRegressor and TreeEnsembleClassifier (ai.onnx.ml 1 and 3).

func init() {
	kernels[DomainML]["TreeEnsembleRegressor"] = newTreeRegressor
	kernels[DomainML]["TreeEnsembleClassifier"] = newTreeClassifier
}

// Node modes.
const (
	leaf = iota
	branchLEQ
	branchLT
	branchGTE
	branchGT
	branchEQ
	branchNEQ
)

var modes = map[string]uint8{"LEAF": leaf, "BRANCH_LEQ": branchLEQ, "BRANCH_LT": branchLT,
	"BRANCH_GTE": branchGTE, "BRANCH_GT": branchGT, "BRANCH_EQ": branchEQ, "BRANCH_NEQ": branchNEQ}

type treeNode struct {
	mode        uint8
	missingTrue bool // a NaN feature takes the true branch
	feature     int
	value       float64
	t, f        int32 // indexes into ensemble.nodes
	lo, hi      int32 // a leaf's weights: ensemble.weights[lo:hi]
}

type treeWeight struct {
	target int
	w      float64
}

// ensemble is the trees of either operator: nodes in one slice, and the
// index of each tree's root.
type ensemble struct {
	nodes      []treeNode
	roots      []int32
	maxFeature int // the largest feature a branch reads, -1 if none
	post       string
	base       []float64
	weights    []treeWeight // every leaf's, leaf after leaf
	// fast is the trees compiled for forest's walk, on the first run (a
	// model loaded but never run carries no second copy of its trees); a
	// leaf's ID is its number k in spans (its weights are
	// weights[spans[2k]:spans[2k+1]]), or forest.WalkItself.
	compileOnce sync.Once
	fast        *forest.Forest
	spans       []int32
	// oneTarget, when not -1, is the target of every leaf's one weight
	// (a binary classifier's or a single-target regressor's trees), and
	// leafW the weight of leaf k: sum then adds them without a slice per
	// leaf. Set with fast.
	oneTarget int
	leafW     []float64
}

// compiled is fast, compiled on first use.
func (e *ensemble) compiled() *forest.Forest {
	e.compileOnce.Do(func() { e.fast = e.compile() })
	return e.fast
}

type treeKey struct{ tree, node int64 }

// newEnsemble checks and links the nodes_* attributes, and the weights
// (prefix "target" or "class") of targets 0 to targets-1.
func newEnsemble(n *Node, prefix string, targets int) (*ensemble, error) {
	treeIDs, err1 := attrInts(n, "nodes_treeids")
	nodeIDs, err2 := attrInts(n, "nodes_nodeids")
	features, err3 := attrInts(n, "nodes_featureids")
	values, err4 := attrFloats(n, "nodes_values")
	modeNames, err5 := attrStrings(n, "nodes_modes")
	trueIDs, err6 := attrInts(n, "nodes_truenodeids")
	falseIDs, err7 := attrInts(n, "nodes_falsenodeids")
	missing, err8 := attrInts(n, "nodes_missing_value_tracks_true")
	post, err9 := attrPostTransform(n)
	base, err10 := attrFloats(n, "base_values")
	if err := errors.Join(err1, err2, err3, err4, err5, err6, err7, err8, err9, err10); err != nil {
		return nil, err
	}
	nn := len(nodeIDs)
	if nn == 0 {
		return nil, errors.New("has no nodes")
	}
	for name, l := range map[string]int{"nodes_treeids": len(treeIDs), "nodes_featureids": len(features),
		"nodes_values": len(values), "nodes_modes": len(modeNames), "nodes_truenodeids": len(trueIDs),
		"nodes_falsenodeids": len(falseIDs)} {
		if l != nn {
			return nil, fmt.Errorf("%s has %d entries, nodes_nodeids %d", name, l, nn)
		}
	}
	if len(missing) != 0 && len(missing) != nn {
		return nil, fmt.Errorf("nodes_missing_value_tracks_true has %d entries, nodes_nodeids %d", len(missing), nn)
	}
	e := &ensemble{nodes: make([]treeNode, nn), maxFeature: -1, post: post, base: base}
	index := make(map[treeKey]int32, nn)
	for i := range nodeIDs {
		k := treeKey{treeIDs[i], nodeIDs[i]}
		if _, dup := index[k]; dup {
			return nil, fmt.Errorf("tree %d has node %d twice", k.tree, k.node)
		}
		index[k] = int32(i)
	}
	reached := make([]bool, nn)
	for i := range e.nodes {
		m, ok := modes[modeNames[i]]
		if !ok {
			return nil, fmt.Errorf("tree %d node %d: mode %q is not one of LEAF, BRANCH_LEQ, BRANCH_LT, BRANCH_GTE, BRANCH_GT, BRANCH_EQ, BRANCH_NEQ",
				treeIDs[i], nodeIDs[i], modeNames[i])
		}
		t := &e.nodes[i]
		t.mode = m
		t.missingTrue = len(missing) > 0 && missing[i] != 0
		if m == leaf {
			continue
		}
		if features[i] < 0 || features[i] > math.MaxInt32 {
			return nil, fmt.Errorf("tree %d node %d: feature %d", treeIDs[i], nodeIDs[i], features[i])
		}
		t.feature, t.value = int(features[i]), values[i]
		e.maxFeature = max(e.maxFeature, t.feature)
		for j, child := range []int64{trueIDs[i], falseIDs[i]} {
			c, ok := index[treeKey{treeIDs[i], child}]
			if !ok || reached[c] {
				return nil, fmt.Errorf("tree %d node %d: child %d is not a node of the tree, or is reached twice", treeIDs[i], nodeIDs[i], child)
			}
			reached[c] = true
			if j == 0 {
				t.t = c
			} else {
				t.f = c
			}
		}
	}
	// Each tree has one root: the one node no branch reaches. With every
	// other node reached once, no walk from a root can cycle.
	rootOf := map[int64]bool{}
	for i := range e.nodes {
		if !reached[i] {
			if rootOf[treeIDs[i]] {
				return nil, fmt.Errorf("tree %d has more than one root (nodes no branch reaches)", treeIDs[i])
			}
			rootOf[treeIDs[i]] = true
			e.roots = append(e.roots, int32(i))
		}
	}
	for _, id := range treeIDs {
		if !rootOf[id] {
			return nil, fmt.Errorf("tree %d has no root: its branches form a cycle", id)
		}
	}
	// Weights at leaves.
	wTrees, err1 := attrInts(n, prefix+"_treeids")
	wNodes, err2 := attrInts(n, prefix+"_nodeids")
	wIDs, err3 := attrInts(n, prefix+"_ids")
	ws, err4 := attrFloats(n, prefix+"_weights")
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, err
	}
	if len(wNodes) != len(wTrees) || len(wIDs) != len(wTrees) || len(ws) != len(wTrees) {
		return nil, fmt.Errorf("%s_treeids, _nodeids, _ids and _weights have %d, %d, %d and %d entries",
			prefix, len(wTrees), len(wNodes), len(wIDs), len(ws))
	}
	// The weights of each node together, in node order, each node's in
	// the attributes' order (the order they are summed in).
	node := make([]int32, len(wTrees))
	start := make([]int32, nn+1)
	for i := range wTrees {
		c, ok := index[treeKey{wTrees[i], wNodes[i]}]
		if !ok {
			return nil, fmt.Errorf("%s weight %d: tree %d has no node %d", prefix, i, wTrees[i], wNodes[i])
		}
		if wIDs[i] < 0 || wIDs[i] >= int64(targets) {
			return nil, fmt.Errorf("%s weight %d: %s id %d, want below %d", prefix, i, prefix, wIDs[i], targets)
		}
		node[i] = c
		start[c+1]++
	}
	for c := range nn {
		start[c+1] += start[c]
	}
	e.weights = make([]treeWeight, len(wTrees))
	next := append([]int32(nil), start[:nn]...)
	for i, c := range node {
		e.weights[next[c]] = treeWeight{int(wIDs[i]), ws[i]}
		next[c]++
	}
	for c := range e.nodes {
		e.nodes[c].lo, e.nodes[c].hi = start[c], start[c+1]
	}
	return e, nil
}

// compile lays the trees out for forest's walk, every mode as "go left
// when x <= threshold": BRANCH_LT through the largest float64 below the
// value, BRANCH_GTE and BRANCH_GT as the opposite split with the branches
// swapped. A NaN goes where the node's comparison sends it (false, but for
// nodes_missing_value_tracks_true). A tree with a branch no threshold
// expresses (BRANCH_EQ, BRANCH_NEQ, a NaN value) compiles to one leaf of
// ID forest.WalkItself, and each walks it with leaf.
func (e *ensemble) compile() *forest.Forest {
	nodes := make([]forest.Node, len(e.nodes), len(e.nodes)+len(e.roots))
	ok := make([]bool, len(e.nodes))
	for i, t := range e.nodes {
		if t.mode == leaf {
			nodes[i], ok[i] = forest.Node{Leaf: true, LeafID: int32(len(e.spans) / 2)}, true
			e.spans = append(e.spans, t.lo, t.hi)
			continue
		}
		n := forest.Node{Feature: t.feature, Threshold: t.value, Left: int(t.t), Right: int(t.f)}
		switch t.mode {
		case branchLEQ:
			ok[i] = !math.IsNaN(t.value)
		case branchLT:
			n.Threshold, ok[i] = forest.LessThan(t.value)
		case branchGTE:
			n.Threshold, ok[i] = forest.LessThan(t.value)
			n.Left, n.Right = n.Right, n.Left
		case branchGT:
			ok[i] = !math.IsNaN(t.value)
			n.Left, n.Right = n.Right, n.Left
		}
		nan := int(t.f)
		if t.missingTrue {
			nan = int(t.t)
		}
		n.NaNLeft = nan == n.Left
		nodes[i] = n
	}
	roots := make([]int, len(e.roots))
	for i, r := range e.roots {
		roots[i] = int(r)
		if !e.compiles(r, ok) {
			roots[i] = len(nodes)
			nodes = append(nodes, forest.Node{Leaf: true, LeafID: forest.WalkItself})
		}
	}
	f, err := forest.Compile(nodes, roots, e.maxFeature+1)
	if err != nil {
		return nil
	}
	e.oneTarget = -1
	if n := len(e.spans) / 2; n > 0 {
		leafW := make([]float64, n)
		target := -1
		for k := range leafW {
			lo, hi := e.spans[2*k], e.spans[2*k+1]
			if k == 0 && hi == lo+1 {
				target = e.weights[lo].target
			}
			if hi != lo+1 || e.weights[lo].target != target {
				leafW = nil
				break
			}
			leafW[k] = e.weights[lo].w
		}
		if leafW != nil {
			e.oneTarget, e.leafW = target, leafW
		}
	}
	return f
}

// compiles says whether every node of the tree at root compiled.
func (e *ensemble) compiles(root int32, ok []bool) bool {
	for stack := []int32{root}; len(stack) > 0; {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !ok[i] {
			return false
		}
		if e.nodes[i].mode != leaf {
			stack = append(stack, e.nodes[i].t, e.nodes[i].f)
		}
	}
	return true
}

// each calls fn with the weights of the leaf each tree reaches for row x,
// in tree order.
func (e *ensemble) each(x []float64, fn func([]treeWeight)) {
	var ws [forest.Chunk][]treeWeight
	for first := 0; first < len(e.roots); first += len(ws) {
		chunk := ws[:min(len(ws), len(e.roots)-first)]
		e.weightsOf(x, first, chunk)
		for _, w := range chunk {
			fn(w)
		}
	}
}

// sum adds the weights of the leaf each tree reaches for row x into s by
// target, in tree order, and marks the targets in has: each without a call
// per tree, for the aggregations that sum, and without gathering the
// leaves' weights first where the fast walk runs.
func (e *ensemble) sum(x []float64, s []float64, has []bool) {
	fast := e.compiled()
	if fast == nil || len(x) < fast.Features() {
		var ws [forest.Chunk][]treeWeight
		for first := 0; first < len(e.roots); first += len(ws) {
			chunk := ws[:min(len(ws), len(e.roots)-first)]
			e.weightsOf(x, first, chunk)
			for _, leafWs := range chunk {
				for _, w := range leafWs {
					s[w.target] += w.w
					has[w.target] = true
				}
			}
		}
		return
	}
	var ids [forest.Chunk]int32
	if t := e.oneTarget; t >= 0 {
		// Every leaf adds one weight to target t: in a register, in
		// tree order as below.
		acc := s[t]
		for first := 0; first < len(e.roots); first += len(ids) {
			chunk := ids[:min(len(ids), len(e.roots)-first)]
			fast.Leaves(x[:fast.Features()], first, chunk)
			for k, id := range chunk {
				if id == forest.WalkItself {
					acc += e.weights[e.leaf(e.roots[first+k], x).lo].w
				} else {
					acc += e.leafW[id]
				}
			}
		}
		s[t] = acc
		has[t] = has[t] || len(e.roots) > 0
		return
	}
	for first := 0; first < len(e.roots); first += len(ids) {
		chunk := ids[:min(len(ids), len(e.roots)-first)]
		fast.Leaves(x[:fast.Features()], first, chunk)
		for k, id := range chunk {
			var ws []treeWeight
			if id == forest.WalkItself {
				l := e.leaf(e.roots[first+k], x)
				ws = e.weights[l.lo:l.hi]
			} else {
				ws = e.weights[e.spans[2*id]:e.spans[2*id+1]]
			}
			for _, w := range ws {
				s[w.target] += w.w
				has[w.target] = true
			}
		}
	}
}

// weightsOf writes the weights of the leaf that each of the trees first to
// first+len(ws)-1 reaches for row x into ws: through the fast walk where
// the trees compiled, else through leaf.
func (e *ensemble) weightsOf(x []float64, first int, ws [][]treeWeight) {
	fast := e.compiled()
	if fast == nil || len(x) < fast.Features() {
		for k := range ws {
			l := e.leaf(e.roots[first+k], x)
			ws[k] = e.weights[l.lo:l.hi]
		}
		return
	}
	var ids [forest.Chunk]int32
	fast.Leaves(x[:fast.Features()], first, ids[:len(ws)])
	for k, id := range ids[:len(ws)] {
		if id == forest.WalkItself {
			l := e.leaf(e.roots[first+k], x)
			ws[k] = e.weights[l.lo:l.hi]
			continue
		}
		ws[k] = e.weights[e.spans[2*id]:e.spans[2*id+1]]
	}
}

// leaf walks a tree from its root to the leaf a row reaches.
func (e *ensemble) leaf(root int32, x []float64) *treeNode {
	t := &e.nodes[root]
	for t.mode != leaf {
		v := x[t.feature]
		var ok bool
		if t.missingTrue && math.IsNaN(v) {
			ok = true
		} else {
			switch t.mode {
			case branchLEQ:
				ok = v <= t.value
			case branchLT:
				ok = v < t.value
			case branchGTE:
				ok = v >= t.value
			case branchGT:
				ok = v > t.value
			case branchEQ:
				ok = v == t.value
			case branchNEQ:
				ok = v != t.value
			}
		}
		if ok {
			t = &e.nodes[t.t]
		} else {
			t = &e.nodes[t.f]
		}
	}
	return t
}

// input checks the input has the features the branches read.
func (e *ensemble) input(x *Tensor) (nr, f int, err error) {
	nr, f, err = rows(x)
	if err == nil && e.maxFeature >= f {
		err = fmt.Errorf("input has %d features, the trees read feature %d", f, e.maxFeature)
	}
	return nr, f, err
}

type treeRegressor struct {
	*ensemble
	targets   int
	aggregate string
}

func newTreeRegressor(n *Node, _ int64) (kernel, error) {
	targets, err1 := attrInt(n, "n_targets", 1)
	agg, err2 := attrString(n, "aggregate_function", "SUM")
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	if targets < 1 || targets > 100_000 {
		return nil, fmt.Errorf("n_targets %d", targets)
	}
	if agg != "SUM" && agg != "AVERAGE" && agg != "MIN" && agg != "MAX" {
		return nil, fmt.Errorf("aggregate_function %q is not one of SUM, AVERAGE, MIN, MAX", agg)
	}
	e, err := newEnsemble(n, "target", int(targets))
	if err != nil {
		return nil, err
	}
	if len(e.base) != 0 && len(e.base) != int(targets) {
		return nil, fmt.Errorf("base_values has %d values for %d targets", len(e.base), targets)
	}
	return &treeRegressor{e, int(targets), agg}, wantArity(n, 1, 1)
}

func (r *treeRegressor) run(in []*Tensor) ([]*Tensor, error) { return r.reuse(in, nil) }

// reuse is run, writing over its previous output where it fits.
func (r *treeRegressor) reuse(in []*Tensor, prev []*Tensor) ([]*Tensor, error) {
	x := in[0]
	nr, f, err := r.input(x)
	if err != nil {
		return nil, err
	}
	y := tensorFor(prev, 0, Float, nr, r.targets)
	out := y.F
	var hasBuf [8]bool
	has := scratch(hasBuf[:], r.targets)
	for row := 0; row < nr; row++ {
		s := out[row*r.targets : (row+1)*r.targets]
		clear(s)
		clear(has)
		if r.aggregate == "SUM" || r.aggregate == "AVERAGE" {
			r.sum(x.F[row*f:(row+1)*f], s, has)
		} else {
			r.each(x.F[row*f:(row+1)*f], func(ws []treeWeight) {
				for _, w := range ws {
					switch {
					case r.aggregate == "MIN" && has[w.target]:
						s[w.target] = math.Min(s[w.target], w.w)
					case r.aggregate == "MAX" && has[w.target]:
						s[w.target] = math.Max(s[w.target], w.w)
					default:
						s[w.target] += w.w
					}
					has[w.target] = true
				}
			})
		}
		for k := range s {
			if r.aggregate == "AVERAGE" {
				s[k] /= float64(len(r.roots))
			}
			if len(r.base) > 0 {
				s[k] += r.base[k]
			}
		}
		transform(r.post, s)
		for k, v := range s {
			s[k] = fit(Float, v)
		}
	}
	return outputs(prev, y), nil
}

// tensorFor is output i of a kernel: prev[i], what it returned on the
// previous run of a Session, when that is a tensor of type typ and shape
// [rows, cols] ([rows] for cols < 0), to be written over whole; else a
// new one, of zeros.
func tensorFor(prev []*Tensor, i int, typ int32, rows, cols int) *Tensor {
	n := rows
	if cols >= 0 {
		n *= cols
	}
	if i < len(prev) {
		t := prev[i]
		fits := t != nil && t.Type == typ && t.Len() == n && len(t.Shape) == 1+b2i(cols >= 0) && t.Shape[0] == rows
		if fits && (cols < 0 || t.Shape[1] == cols) {
			return t
		}
	}
	t := &Tensor{Type: typ, Shape: []int{rows}}
	if cols >= 0 {
		t.Shape = append(t.Shape, cols)
	}
	if typ == String {
		t.S = make([]string, n)
	} else {
		t.F = make([]float64, n)
	}
	return t
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// outputs is a kernel's outputs ts, in prev's slice when it has their
// number.
func outputs(prev []*Tensor, ts ...*Tensor) []*Tensor {
	if len(prev) != len(ts) {
		prev = make([]*Tensor, len(ts))
	}
	copy(prev, ts)
	return prev
}

// scratch is buf[:n] when n fits, else a new slice of n.
func scratch[T any](buf []T, n int) []T {
	if n <= len(buf) {
		return buf[:n]
	}
	return make([]T, n)
}

type treeClassifier struct {
	*ensemble
	ints []int64
	strs []string
	// binary: two classes and weights for one class only; positive: no
	// negative weight. onnxruntime then derives the other class's score.
	binary, positive bool
}

func newTreeClassifier(n *Node, _ int64) (kernel, error) {
	ints, strs, err := classLabels(n, "classlabels_int64s")
	if err != nil {
		return nil, err
	}
	classes := len(ints) + len(strs)
	e, err := newEnsemble(n, "class", classes)
	if err != nil {
		return nil, err
	}
	if len(e.base) != 0 && len(e.base) != classes && !(classes == 2 && len(e.base) == 1) {
		return nil, fmt.Errorf("base_values has %d values for %d classes", len(e.base), classes)
	}
	if len(n.Outputs) != 2 {
		return nil, fmt.Errorf("has %d outputs, want 2 (label and scores)", len(n.Outputs))
	}
	ids := map[int]bool{}
	positive := true
	for _, w := range e.weights {
		ids[w.target] = true
		positive = positive && w.w >= 0
	}
	return &treeClassifier{e, ints, strs, classes == 2 && len(ids) == 1, positive}, wantArity(n, 1, 1)
}

func (c *treeClassifier) run(in []*Tensor) ([]*Tensor, error) { return c.reuse(in, nil) }

// reuse is run, writing over its previous outputs where they fit.
func (c *treeClassifier) reuse(in []*Tensor, prev []*Tensor) ([]*Tensor, error) {
	x := in[0]
	nr, f, err := c.input(x)
	if err != nil {
		return nil, err
	}
	classes := len(c.ints) + len(c.strs)
	var labelType int32 = Int64
	if c.strs != nil {
		labelType = String
	}
	label := tensorFor(prev, 0, labelType, nr, -1)
	z := tensorFor(prev, 1, Float, nr, classes)
	var sBuf [8]float64
	var hasBuf [8]bool
	s, has := scratch(sBuf[:], classes), scratch(hasBuf[:], classes)
	for row := 0; row < nr; row++ {
		clear(s)
		clear(has)
		c.sum(x.F[row*f:(row+1)*f], s, has)
		out := z.F[row*classes : (row+1)*classes]
		var k int
		if classes > 2 {
			k = c.multiclass(s, has, out)
		} else {
			k = c.binaryScores(s, has, out)
		}
		for i, v := range out {
			out[i] = fit(Float, v)
		}
		if c.strs != nil {
			label.S[row] = c.strs[k]
		} else {
			label.F[row] = float64(c.ints[k])
		}
	}
	return outputs(prev, label, z), nil
}

func (c *treeClassifier) multiclass(s []float64, has []bool, out []float64) int {
	for k, b := range c.base {
		s[k] += b
		has[k] = true
	}
	best := -1
	for k := range s {
		if has[k] && (best < 0 || s[k] > s[best]) {
			best = k
		}
	}
	copy(out, s)
	transform(c.post, out)
	return max(best, 0)
}

// binaryScores is onnxruntime's TreeEnsembleClassifier for two classes
// (tree_ensemble_aggregator.h, FinalizeScores and write_scores), which the
// specification leaves open: with weights for one class only, the other
// class's score is derived from it.
func (c *treeClassifier) binaryScores(s []float64, has []bool, out []float64) int {
	n := 2
	add := -1
	switch len(c.base) {
	case 2:
		if has[1] {
			s[1] = c.base[1] + s[0]
			s[0] = -s[1]
		} else {
			s[1] += c.base[1]
			s[0] += c.base[0]
		}
	case 1:
		s[0] += c.base[0]
		if !has[1] {
			n = 1
		}
	case 0:
		add = 3
		if !has[1] {
			n = 1
		}
	}
	var pos float64
	switch {
	case n == 2 && has[1]:
		pos = s[1]
	case has[0]:
		pos = s[0]
	}
	label := 0
	switch {
	case c.binary && c.positive:
		if pos > 0.5 {
			add, label = 0, 1
		} else {
			add = 1
		}
	case c.binary:
		if pos > 0 {
			add, label = 2, 1
		} else {
			add = 3
		}
	case n == 2:
		label = argmaxFirst(s)
	case pos > 0:
		label = 1
	}
	if n == 2 {
		copy(out, s)
		transform(c.post, out)
		return label
	}
	v := s[0]
	switch {
	case c.post == "PROBIT":
		// onnxruntime writes one column; the second stays 0.
		out[0], out[1] = math.Sqrt2*math.Erfinv(2*v-1), 0
	case add == 0 || add == 1:
		out[0], out[1] = 1-v, v
	case c.post == "LOGISTIC":
		out[0], out[1] = logistic(-v), logistic(v)
	case add == 2:
		out[0], out[1] = -v, v
	default:
		out[0], out[1] = v, -v
	}
	return label
}
