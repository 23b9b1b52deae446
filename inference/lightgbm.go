package inference

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/modelfleet/modelfleet/inference/forest"
)

// Limits on a LightGBM model, far above what a model served at the edge
// needs, so that a hostile file fails to load instead of exhausting memory.
// Every array's length is checked against its line before it is allocated.
const (
	maxLGBTrees    = 100_000
	maxLGBLeaves   = 10_000_000 // all trees together (nodes: one fewer per tree)
	maxLGBFeatures = 1_000_000
	maxLGBClasses  = 10_000
	maxLGBCatWords = 10_000_000 // categorical bitset words, all trees together
	maxLGBCoeffs   = 10_000_000 // linear leaf coefficients, all trees together
)

// lgbZero is LightGBM's kZeroThreshold (the float 1e-35 widened to a
// double): a feature within it of zero is zero, both when a row is copied
// into the predictor's buffer and for missing type Zero.
const lgbZero = float64(float32(1e-35))

// Bits of a node's decision_type (LightGBM's include/LightGBM/tree.h).
const (
	lgbCategorical = 1 << 0
	lgbDefaultLeft = 1 << 1
	// bits 2-3: missing type
	lgbMissingNone = 0
	lgbMissingZero = 1
	lgbMissingNaN  = 2
)

// lgbNode is one internal node. Children >= 0 are nodes, < 0 are leaf ^child.
type lgbNode struct {
	threshold    float64 // numerical: go left when x <= threshold
	feature      int32
	left, right  int32
	catLo, catHi int32 // categorical: the split's bitset words in lgbTree.cats
	decision     uint8
}

// lgbTree is one checked tree: nodes[0] is the root (none for a one-leaf
// tree).
type lgbTree struct {
	nodes []lgbNode
	leaf  []float64
	cats  []uint32
	// linear trees (linear_tree=true): leaf l's value is
	// leafConst[l] + sum coeff[i]*x[feat[i]] over i in off[l]:off[l+1].
	linear    bool
	leafConst []float64
	off       []int32
	feat      []int32
	coeff     []float64
}

// lgbModel predicts as LightGBM's GBDT::Predict: per output, the sum of its
// trees (tree i belongs to output i mod K) in file order, divided by the
// number of iterations for a random forest (average_output), then the
// objective's ConvertOutput.
type lgbModel struct {
	trees     []lgbTree
	k         int // outputs (num_tree_per_iteration)
	average   bool
	objective lgbObjective
	// fast is the trees compiled for forest's walk, on first use; a leaf's
	// ID is its index in values (all trees' leaf values, tree after tree),
	// or forest.WalkItself. first[i] is tree i's first leaf in values; compile
	// sets values, first and linear.
	fast   *lazyForest
	values []float64
	first  []int32
	linear bool // some tree is linear: its leaves' values depend on the row
}

// compile lays the trees out for forest's walk: LightGBM's numerical split
// already goes left when x <= threshold (on the row as lgbValue reads it);
// what remains is where a NaN goes, which the missing type says. A tree
// with a categorical split, or a zero-as-missing split whose default side
// is not where 0 goes (no threshold expresses either), compiles to
// forest.WalkItself and keeps the tree's own walk.
func (m *lgbModel) compile(features int) *forest.Forest {
	var nodes []forest.Node
	roots := make([]int, len(m.trees))
	m.values, m.first = nil, make([]int32, len(m.trees))
	for i := range m.trees {
		t := &m.trees[i]
		m.first[i] = int32(len(m.values))
		m.values = append(m.values, t.leaf...)
		m.linear = m.linear || t.linear
		off, leaves := len(nodes), len(nodes)+len(t.nodes)
		roots[i] = off
		if len(t.nodes) == 0 {
			roots[i] = leaves // a one-leaf tree
		}
		child := func(c int32) int {
			if c < 0 {
				return leaves + int(^c)
			}
			return off + int(c)
		}
		for _, n := range t.nodes {
			f, ok := lgbSplit(n)
			if !ok {
				nodes = append(nodes[:off], forest.Node{Leaf: true, LeafID: forest.WalkItself})
				break
			}
			f.Left, f.Right = child(n.left), child(n.right)
			nodes = append(nodes, f)
		}
		if len(nodes) == off+1 && nodes[off].LeafID == forest.WalkItself {
			continue
		}
		for l := range t.leaf {
			nodes = append(nodes, forest.Node{Leaf: true, LeafID: m.first[i] + int32(l)})
		}
	}
	f, err := forest.Compile(nodes, roots, features)
	if err != nil {
		return nil
	}
	return f
}

// lgbSplit is a numerical split as forest's: false for one that it cannot
// express.
func lgbSplit(n lgbNode) (forest.Node, bool) {
	if n.decision&lgbCategorical != 0 || math.IsNaN(n.threshold) {
		return forest.Node{}, false
	}
	defaultLeft, zeroLeft := n.decision&lgbDefaultLeft != 0, 0 <= n.threshold
	nanLeft := zeroLeft // missing type None: NaN reads as 0
	switch n.decision >> 2 & 3 {
	case lgbMissingNaN:
		nanLeft = defaultLeft
	case lgbMissingZero:
		// NaN reads as 0, and 0 is missing: both take the default side,
		// which a threshold expresses only if 0 goes there anyway.
		if defaultLeft != zeroLeft {
			return forest.Node{}, false
		}
	}
	return forest.Node{Feature: int(n.feature), Threshold: n.threshold, NaNLeft: nanLeft}, true
}

// leaves walks every tree with forest and calls add with each tree's
// value, in tree order; false if the fast walk is not available for x.
func (m *lgbModel) leaves(x []float64, add func(tree int, v float64)) bool {
	fast := m.fast.get()
	if fast == nil || len(x) != fast.Features() {
		return false
	}
	var buf [fastRowOnStack]float64
	row := lgbRow(buf[:], x)
	var leaves [forest.Chunk]int32
	for first := 0; first < len(m.trees); first += forest.Chunk {
		chunk := leaves[:min(forest.Chunk, len(m.trees)-first)]
		fast.Leaves(row, first, chunk)
		for k, id := range chunk {
			switch i := first + k; {
			case id == forest.WalkItself:
				add(i, m.trees[i].predict(x))
			case m.linear:
				add(i, m.trees[i].value(id-m.first[i], x))
			default:
				add(i, m.values[id])
			}
		}
	}
	return true
}

// lgbRow is x as the fast walk compares it (lgbValue of each feature), in
// buf when it fits.
func lgbRow(buf []float64, x []float64) []float64 {
	row := rowBuffer(buf, len(x))
	for i, v := range x {
		row[i] = lgbValue(v)
	}
	return row
}

// sum1 is the sum of every tree's value in tree order, as leaves would
// hand them to an adder, without a call per tree: a single-output model's
// prediction. False, and 0, if the fast walk is not available for x.
func (m *lgbModel) sum1(x []float64) (raw float64, ok bool) {
	fast := m.fast.get()
	if fast == nil || len(x) != fast.Features() {
		return 0, false
	}
	var buf [fastRowOnStack]float64
	row := lgbRow(buf[:], x)
	var leaves [forest.Chunk]int32
	for first := 0; first < len(m.trees); first += forest.Chunk {
		chunk := leaves[:min(forest.Chunk, len(m.trees)-first)]
		fast.Leaves(row, first, chunk)
		for k, id := range chunk {
			switch i := first + k; {
			case id == forest.WalkItself:
				raw += m.trees[i].predict(x)
			case m.linear:
				raw += m.trees[i].value(id-m.first[i], x)
			default:
				raw += m.values[id]
			}
		}
	}
	return raw, true
}

func (m *lgbModel) numOutputs() int { return m.k }

func (m *lgbModel) output(x []float64) float64 { return m.objective.convert1(m.raw1(x)) }

func (m *lgbModel) outputs(x []float64, out []float64) {
	m.raw(x, out)
	if m.k == 1 {
		out[0] = m.objective.convert1(out[0])
	} else {
		m.objective.convert(out[:m.k])
	}
}

// raw1 is the raw score of a single-output model (predict_raw_score).
func (m *lgbModel) raw1(x []float64) float64 {
	raw, ok := m.sum1(x)
	if !ok {
		for i := range m.trees {
			raw += m.trees[i].predict(x)
		}
	}
	if m.average {
		raw /= float64(len(m.trees))
	}
	return raw
}

// raw writes each output's raw score into out (predict_raw_score).
func (m *lgbModel) raw(x []float64, out []float64) {
	if m.k == 1 {
		out[0] = m.raw1(x)
		return
	}
	out = out[:m.k]
	clear(out)
	if !m.leaves(x, func(i int, v float64) { out[i%m.k] += v }) {
		for i := range m.trees {
			out[i%m.k] += m.trees[i].predict(x)
		}
	}
	if m.average {
		n := float64(len(m.trees) / m.k)
		for c := range out {
			out[c] /= n
		}
	}
}

// lgbValue is a feature as LightGBM's predictor sees it: a dense row keeps
// only values farther than kZeroThreshold from zero (and NaN), the rest
// reads as 0.
func lgbValue(v float64) float64 {
	if v >= -lgbZero && v <= lgbZero {
		return 0
	}
	return v
}

// predict is Tree::Predict.
func (t *lgbTree) predict(x []float64) float64 {
	leaf := int32(0)
	if len(t.nodes) > 0 {
		leaf = t.leafIndex(x)
	}
	return t.value(leaf, x)
}

// value is leaf's output for row x.
func (t *lgbTree) value(leaf int32, x []float64) float64 {
	if !t.linear {
		return t.leaf[leaf]
	}
	out := t.leafConst[leaf]
	for i := t.off[leaf]; i < t.off[leaf+1]; i++ {
		v := x[t.feat[i]]
		if math.IsNaN(v) {
			// A missing value in any of the leaf's features: the constant
			// leaf value instead of the linear model.
			return t.leaf[leaf]
		}
		// The conversion keeps the product rounded on its own, as in
		// LightGBM, rather than fused into the sum.
		out += float64(t.coeff[i] * lgbValue(v))
	}
	return out
}

// leafIndex is Tree::GetLeaf: Decision at each node until a leaf.
func (t *lgbTree) leafIndex(x []float64) int32 {
	i := int32(0)
	for i >= 0 {
		n := &t.nodes[i]
		v := lgbValue(x[n.feature])
		if n.decision&lgbCategorical != 0 {
			i = t.categorical(n, v)
		} else {
			i = lgbNumerical(n, v)
		}
	}
	return ^i
}

// lgbNumerical is Tree::NumericalDecision. NaN is missing only for missing
// type NaN and reads as 0 otherwise; with missing type Zero, 0 is missing.
// A missing value takes the default side, any other goes left when
// x <= threshold.
func lgbNumerical(n *lgbNode, v float64) int32 {
	missing := n.decision >> 2 & 3
	if math.IsNaN(v) && missing != lgbMissingNaN {
		v = 0
	}
	if (missing == lgbMissingZero && v == 0) || (missing == lgbMissingNaN && math.IsNaN(v)) {
		if n.decision&lgbDefaultLeft != 0 {
			return n.left
		}
		return n.right
	}
	if v <= n.threshold {
		return n.left
	}
	return n.right
}

// categorical is Tree::CategoricalDecision: the category is the value
// truncated toward zero (C++'s static_cast<int>); NaN, negative categories
// and those beyond int32 go right, as does a category whose bit is not set
// in the split's bitset (or lies beyond it).
func (t *lgbTree) categorical(n *lgbNode, v float64) int32 {
	if !(v > -1 && v < 1<<31) { // also NaN
		return n.right
	}
	c := int64(v)
	w := int64(n.catLo) + c/32
	if w >= int64(n.catHi) {
		return n.right
	}
	if t.cats[w]>>(c%32)&1 != 0 {
		return n.left
	}
	return n.right
}

// lgbObjective turns the raw sums into outputs as the objective's
// ConvertOutput does (LightGBM src/objective/*.hpp).
type lgbObjective struct {
	name    string
	sigmoid float64 // binary, multiclassova
	sqrt    bool    // regression family trained with reg_sqrt
}

func (o lgbObjective) convert1(raw float64) float64 {
	switch o.name {
	case "binary", "multiclassova":
		return 1 / (1 + math.Exp(-o.sigmoid*raw))
	case "cross_entropy":
		return 1 / (1 + math.Exp(-raw))
	case "cross_entropy_lambda":
		return math.Log1p(math.Exp(raw))
	case "poisson", "gamma", "tweedie":
		return math.Exp(raw)
	}
	if o.sqrt {
		switch {
		case raw > 0:
			return raw * raw
		case raw < 0:
			return -raw * raw
		}
		return 0
	}
	return raw
}

func (o lgbObjective) convert(out []float64) {
	if o.name != "multiclass" {
		for i, v := range out {
			out[i] = o.convert1(v)
		}
		return
	}
	// Common::Softmax: the maximum subtracted before exp.
	hi := out[0]
	for _, v := range out[1:] {
		hi = max(hi, v)
	}
	var sum float64
	for i, v := range out {
		out[i] = math.Exp(v - hi)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
}

// lgbAliases are the objective names LightGBM's ParseObjectiveAlias maps to
// the name it writes (a file written by LightGBM has the latter).
var lgbAliases = map[string]string{
	"regression_l2": "regression", "mean_squared_error": "regression", "mse": "regression", "l2": "regression",
	"l2_root": "regression", "root_mean_squared_error": "regression", "rmse": "regression",
	"mean_absolute_error": "regression_l1", "l1": "regression_l1", "mae": "regression_l1",
	"softmax": "multiclass", "multiclass_ova": "multiclassova", "ova": "multiclassova", "ovr": "multiclassova",
	"xentropy": "cross_entropy", "xentlambda": "cross_entropy_lambda", "mean_absolute_percentage_error": "mape",
	"none": "custom", "null": "custom", "na": "custom",
}

// parseLGBObjective reads the header's objective line ("binary sigmoid:1",
// "multiclass num_class:3", "regression sqrt", "tweedie") and returns it
// with the task it serves.
func parseLGBObjective(line string, numClass int) (lgbObjective, string, error) {
	tokens := strings.Fields(line)
	if len(tokens) == 0 {
		return lgbObjective{}, "", errors.New("empty objective")
	}
	o := lgbObjective{name: strings.Clone(tokens[0])}
	if a, ok := lgbAliases[o.name]; ok && len(tokens) == 1 {
		o.name = a
	}
	params := map[string]string{}
	for _, t := range tokens[1:] {
		if k, v, ok := strings.Cut(t, ":"); ok {
			params[k] = v
		} else {
			params[t] = ""
		}
	}
	task := TaskRegression
	switch o.name {
	case "binary", "multiclassova":
		s, err := strconv.ParseFloat(params["sigmoid"], 64)
		if err != nil || !(s > 0) || math.IsInf(s, 0) {
			return o, "", fmt.Errorf("objective %q: want a positive sigmoid:<value>", line)
		}
		o.sigmoid = s
		task = TaskBinary
	case "regression", "regression_l1", "quantile", "fair", "mape":
		_, o.sqrt = params["sqrt"]
	case "multiclass", "huber", "poisson", "gamma", "tweedie", "cross_entropy", "cross_entropy_lambda":
	case "lambdarank", "rank_xendcg":
		return o, "", fmt.Errorf("objective %q is a ranking objective: its scores only order rows within a query, which is not a task the edge serves", line)
	case "custom":
		return o, "", fmt.Errorf("objective %q: the model was trained with a custom objective, so its raw scores have no known meaning; retrain with a built-in objective", line)
	default:
		return o, "", fmt.Errorf("objective %q is not supported (supported: binary, multiclass, multiclassova, regression, regression_l1, huber, fair, quantile, mape, poisson, gamma, tweedie, cross_entropy, cross_entropy_lambda)", line)
	}
	if o.name == "multiclass" || o.name == "multiclassova" {
		if n, err := strconv.Atoi(params["num_class"]); err != nil || n != numClass {
			return o, "", fmt.Errorf("objective %q does not match num_class=%d", line, numClass)
		}
		if numClass < 2 {
			return o, "", fmt.Errorf("objective %q with num_class=%d: want at least 2 classes", line, numClass)
		}
		return o, TaskMulticlass, nil
	}
	if numClass != 1 {
		return o, "", fmt.Errorf("objective %s is single-output but num_class=%d", o.name, numClass)
	}
	return o, task, nil
}
