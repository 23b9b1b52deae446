package inference

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/modelfleet/modelfleet/inference/forest"
)

// Limits on an XGBoost model, far above what a model served at the edge
// needs, so that a hostile file fails to load instead of exhausting memory.
const (
	maxXGBTrees    = 100_000
	maxXGBNodes    = 50_000_000 // all trees together
	maxXGBFeatures = 1_000_000
	maxXGBClasses  = 10_000
)

// xgbFile is the part of XGBoost's JSON model schema (doc/model.schema in
// the XGBoost repository, written by Booster.save_model since 1.0) that
// prediction needs. UBJSON models carry the same document.
type xgbFile struct {
	Version []int       `json:"version"`
	Learner *xgbLearner `json:"learner"`
}

type xgbLearner struct {
	FeatureNames []string `json:"feature_names"`
	FeatureTypes []string `json:"feature_types"`
	Param        struct {
		BaseScore  string `json:"base_score"`
		NumClass   string `json:"num_class"`
		NumFeature string `json:"num_feature"`
		NumTarget  string `json:"num_target"`
	} `json:"learner_model_param"`
	Objective struct {
		Name string `json:"name"`
	} `json:"objective"`
	Booster *xgbBooster `json:"gradient_booster"`
}

// xgbBooster is "gbtree" (Model set), "dart" (GBTree and WeightDrop set) or
// "gblinear" (refused).
type xgbBooster struct {
	Name       string      `json:"name"`
	Model      *xgbGBTree  `json:"model"`
	GBTree     *xgbBooster `json:"gbtree"`
	WeightDrop []float32   `json:"weight_drop"`
}

type xgbGBTree struct {
	TreeInfo []int64   `json:"tree_info"`
	Trees    []xgbTree `json:"trees"`
}

type xgbTree struct {
	Left        []int64   `json:"left_children"`
	Right       []int64   `json:"right_children"`
	SplitIndex  []int64   `json:"split_indices"`
	SplitCond   []float32 `json:"split_conditions"`
	DefaultLeft flexBools `json:"default_left"`
	SplitType   []int64   `json:"split_type"`
	TreeParam   struct {
		NumNodes       string `json:"num_nodes"`
		SizeLeafVector string `json:"size_leaf_vector"`
	} `json:"tree_param"`
}

// flexBools reads default_left, which XGBoost writes as 0/1 integers (and
// some writers as JSON booleans).
type flexBools []bool

func (f *flexBools) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := make([]bool, len(raw))
	for i, r := range raw {
		switch string(r) {
		case "0", "false":
		case "1", "true":
			out[i] = true
		default:
			return fmt.Errorf("default_left[%d] is %s, want 0 or 1", i, r)
		}
	}
	*f = out
	return nil
}

// xgbNode is one node of a flattened tree. Leaves have feature -1 and their
// value in cond. XGBoost keeps split conditions and leaf values in float32,
// and compares features as float32, so this does too.
type xgbNode struct {
	feature     int32
	left, right int32
	defaultLeft bool
	cond        float32
}

// xgbModel predicts as XGBoost's CPU predictor does: margins start at the
// base margin, each tree's leaf (times its dart weight) is added in tree
// order in float32, and the objective's transform turns margins into
// outputs.
type xgbModel struct {
	trees      [][]xgbNode
	group      []int     // output group (class) of each tree
	weight     []float32 // dart weights; nil for gbtree
	baseMargin float32
	objective  string
	groups     int
	features   int
	// fast is the trees compiled for forest's walk on first use, nil where
	// they cannot be (a tree too large for it); leaf IDs are the leaves'
	// float32 bits.
	fast *lazyForest
}

// xgbObjectives maps the objectives whose output the edge can reproduce to
// the task they serve.
var xgbObjectives = map[string]string{
	"binary:logistic":      TaskBinary,
	"reg:logistic":         TaskRegression,
	"reg:squarederror":     TaskRegression,
	"reg:linear":           TaskRegression, // the old name of reg:squarederror
	"reg:squaredlogerror":  TaskRegression,
	"reg:pseudohubererror": TaskRegression,
	"reg:absoluteerror":    TaskRegression,
	"reg:quantileerror":    TaskRegression,
	"count:poisson":        TaskRegression,
	"reg:gamma":            TaskRegression,
	"reg:tweedie":          TaskRegression,
	"multi:softprob":       TaskMulticlass,
	"multi:softmax":        TaskMulticlass,
}

// loadXGBoost parses an XGBoost JSON model; ubj says data is UBJSON.
func loadXGBoost(data []byte, ubj bool) (*Model, error) {
	if ubj {
		var err error
		if data, err = ubjsonToJSON(data); err != nil {
			return nil, err
		}
	}
	var f xgbFile
	if err := json.Unmarshal(data, &f); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("not valid JSON at offset %d (truncated file?): %v", se.Offset, err)
		}
		return nil, err
	}
	l := f.Learner
	if l == nil {
		return nil, errors.New(`not an XGBoost model: no "learner" object`)
	}
	if len(f.Version) > 0 && f.Version[0] < 1 {
		return nil, fmt.Errorf("written by XGBoost %v: re-save it with XGBoost >= 1.0", f.Version)
	}
	task, ok := xgbObjectives[l.Objective.Name]
	if !ok {
		return nil, fmt.Errorf("objective %q is not supported (supported: binary:logistic, multi:softprob, multi:softmax, reg:squarederror and the other reg:, count: objectives)", l.Objective.Name)
	}
	m := &xgbModel{objective: l.Objective.Name, groups: 1}
	var err error
	if m.features, err = paramInt("num_feature", l.Param.NumFeature, 1, maxXGBFeatures); err != nil {
		return nil, err
	}
	if l.Param.NumTarget != "" && l.Param.NumTarget != "1" {
		return nil, fmt.Errorf("num_target=%s: multi-target models are not supported", l.Param.NumTarget)
	}
	classes, err := paramInt("num_class", l.Param.NumClass, 0, maxXGBClasses)
	if err != nil {
		return nil, err
	}
	if task == TaskMulticlass {
		if classes < 2 {
			return nil, fmt.Errorf("objective %s with num_class=%d: want at least 2 classes", m.objective, classes)
		}
		m.groups = classes
	} else if classes > 1 {
		return nil, fmt.Errorf("objective %s with num_class=%d: want 0 or 1", m.objective, classes)
	}
	base, err := xgbBaseScore(l.Param.BaseScore)
	if err != nil {
		return nil, err
	}
	if m.baseMargin, err = probToMargin(m.objective, base); err != nil {
		return nil, err
	}
	gb, err := m.booster(l.Booster)
	if err != nil {
		return nil, err
	}
	if err := m.build(gb); err != nil {
		return nil, err
	}
	names := l.FeatureNames
	if len(names) == 0 {
		// What XGBoost itself calls unnamed columns.
		names = make([]string, m.features)
		for i := range names {
			names[i] = "f" + strconv.Itoa(i)
		}
	} else if len(names) != m.features {
		return nil, fmt.Errorf("num_feature=%d but feature_names has %d names", m.features, len(names))
	}
	for i, t := range l.FeatureTypes {
		if t == "c" {
			return nil, fmt.Errorf("feature %q is categorical: categorical features are not supported", names[min(i, len(names)-1)])
		}
	}
	out := &Model{format: FormatXGBoost, rt: m, features: names, task: task, classes: 1}
	switch task {
	case TaskBinary:
		out.classes = 2
	case TaskMulticlass:
		out.classes = m.groups
	}
	return out, nil
}

// paramInt reads one of XGBoost's string-valued integer parameters.
func paramInt(key, s string, lo, hi int) (int, error) {
	if s == "" && lo == 0 {
		return 0, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("learner_model_param %s=%q: want an integer from %d to %d", key, s, lo, hi)
	}
	return v, nil
}

// xgbBaseScore reads base_score: a float32 written as a string ("5E-1"),
// or since XGBoost 3.0 a one-element vector ("[5E-1]").
func xgbBaseScore(s string) (float32, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
		t = strings.TrimSpace(t[1 : len(t)-1])
		if strings.Contains(t, ",") {
			return 0, fmt.Errorf("base_score %q: one intercept per output is not supported", s)
		}
	}
	if t == "" {
		return 0.5, nil // XGBoost's default before 2.0, and absent only in hand-written files
	}
	v, err := strconv.ParseFloat(t, 32)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("base_score %q is not a finite number", s)
	}
	return float32(v), nil
}

// probToMargin turns base_score, which XGBoost stores in the output's space
// (a probability for logistic objectives), into the margin trees add to, as
// the objective's ProbToMargin does in XGBoost >= 1.0.
func probToMargin(objective string, base float32) (float32, error) {
	switch objective {
	case "binary:logistic", "reg:logistic":
		if base <= 0 || base >= 1 {
			return 0, fmt.Errorf("base_score %v must be in (0, 1) for %s", base, objective)
		}
		return float32(-math.Log(1/float64(base) - 1)), nil
	case "count:poisson", "reg:gamma", "reg:tweedie":
		if base <= 0 {
			return 0, fmt.Errorf("base_score %v must be positive for %s", base, objective)
		}
		return float32(math.Log(float64(base))), nil
	}
	return base, nil
}

// booster returns the tree ensemble of a gbtree or dart booster, keeping
// dart's weights.
func (m *xgbModel) booster(b *xgbBooster) (*xgbGBTree, error) {
	if b == nil {
		return nil, errors.New(`no "gradient_booster" object`)
	}
	switch b.Name {
	case "gbtree":
	case "dart":
		if b.GBTree == nil || b.GBTree.Name != "gbtree" {
			return nil, errors.New(`dart booster without its "gbtree" object`)
		}
		m.weight = b.WeightDrop
		if m.weight == nil {
			m.weight = []float32{}
		}
		b = b.GBTree
	case "gblinear":
		return nil, errors.New("gblinear boosters are not supported: train with booster=gbtree")
	default:
		return nil, fmt.Errorf("booster %q is not supported", b.Name)
	}
	if b.Model == nil {
		return nil, errors.New(`gbtree booster without its "model" object`)
	}
	return b.Model, nil
}

// build checks and flattens the trees.
func (m *xgbModel) build(gb *xgbGBTree) error {
	n := len(gb.Trees)
	if n > maxXGBTrees {
		return fmt.Errorf("%d trees: more than %d", n, maxXGBTrees)
	}
	if len(gb.TreeInfo) != n {
		return fmt.Errorf("%d trees but tree_info has %d entries", n, len(gb.TreeInfo))
	}
	if m.weight != nil && len(m.weight) != n {
		return fmt.Errorf("dart booster: %d trees but weight_drop has %d weights", n, len(m.weight))
	}
	for _, w := range m.weight {
		if math.IsNaN(float64(w)) || math.IsInf(float64(w), 0) {
			return fmt.Errorf("dart weight %v is not finite", w)
		}
	}
	m.trees = make([][]xgbNode, n)
	m.group = make([]int, n)
	total := 0
	for i := range gb.Trees {
		g := gb.TreeInfo[i]
		if g < 0 || g >= int64(m.groups) {
			return fmt.Errorf("tree %d: tree_info says output group %d, want below %d", i, g, m.groups)
		}
		m.group[i] = int(g)
		t := &gb.Trees[i]
		total += len(t.Left)
		if total > maxXGBNodes {
			return fmt.Errorf("more than %d nodes", maxXGBNodes)
		}
		nodes, err := xgbFlatten(t, m.features)
		if err != nil {
			return fmt.Errorf("tree %d: %v", i, err)
		}
		m.trees[i] = nodes
		gb.Trees[i] = xgbTree{} // let the parsed arrays go
	}
	m.fast = newLazyForest(m.compile)
	return nil
}

// compile lays the trees out for forest's walk. XGBoost's split "go left
// when float32(x) < cond" is, on a row rounded to float32 first (walk),
// "x <= the largest float64 below cond".
func (m *xgbModel) compile() *forest.Forest {
	var nodes []forest.Node
	roots := make([]int, len(m.trees))
	for i, t := range m.trees {
		off := len(nodes)
		roots[i] = off
		for _, n := range t {
			if n.feature < 0 {
				nodes = append(nodes, forest.Node{Leaf: true, LeafID: int32(math.Float32bits(n.cond))})
				continue
			}
			th, ok := forest.LessThan(float64(n.cond))
			if !ok {
				return nil
			}
			nodes = append(nodes, forest.Node{Feature: int(n.feature), Threshold: th,
				Left: off + int(n.left), Right: off + int(n.right), NaNLeft: n.defaultLeft})
		}
	}
	f, err := forest.Compile(nodes, roots, m.features)
	if err != nil {
		return nil
	}
	return f
}

// xgbFlatten checks one tree: parallel arrays of num_nodes entries, node 0
// the root, -1 for "no child" on both sides of a leaf, every child in range
// and reached at most once (pruned nodes may stay in the arrays unreached),
// so prediction always ends at a leaf.
func xgbFlatten(t *xgbTree, features int) ([]xgbNode, error) {
	n := len(t.Left)
	if want, err := strconv.Atoi(t.TreeParam.NumNodes); err != nil || want != n {
		return nil, fmt.Errorf("tree_param num_nodes=%q but left_children has %d entries", t.TreeParam.NumNodes, n)
	}
	if s := t.TreeParam.SizeLeafVector; s != "" && s != "0" && s != "1" {
		return nil, fmt.Errorf("size_leaf_vector=%s: vector leaves (multi-target trees) are not supported", s)
	}
	if n == 0 {
		return nil, errors.New("no nodes")
	}
	for _, a := range []struct {
		key string
		len int
	}{{"right_children", len(t.Right)}, {"split_indices", len(t.SplitIndex)}, {"split_conditions", len(t.SplitCond)}, {"default_left", len(t.DefaultLeft)}} {
		if a.len != n {
			return nil, fmt.Errorf("%d nodes but %s has %d entries", n, a.key, a.len)
		}
	}
	if len(t.SplitType) != 0 && len(t.SplitType) != n {
		return nil, fmt.Errorf("%d nodes but split_type has %d entries", n, len(t.SplitType))
	}
	nodes := make([]xgbNode, n)
	seen := make([]bool, n)
	seen[0] = true
	for stack := []int{0}; len(stack) > 0; {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		l, r := t.Left[i], t.Right[i]
		c := t.SplitCond[i]
		if math.IsNaN(float64(c)) || math.IsInf(float64(c), 0) {
			return nil, fmt.Errorf("node %d: split condition or leaf value %v is not finite", i, c)
		}
		nodes[i] = xgbNode{feature: -1, left: -1, right: -1, cond: c}
		if l == -1 && r == -1 {
			continue
		}
		if len(t.SplitType) > 0 && t.SplitType[i] != 0 {
			return nil, fmt.Errorf("node %d: categorical splits are not supported", i)
		}
		f := t.SplitIndex[i]
		if f < 0 || f >= int64(features) {
			return nil, fmt.Errorf("node %d splits on feature %d, want below num_feature=%d", i, f, features)
		}
		for _, ch := range [2]int64{l, r} {
			if ch <= 0 || ch >= int64(n) || seen[ch] {
				return nil, fmt.Errorf("node %d: child %d is out of range or reached twice", i, ch)
			}
			seen[ch] = true
			stack = append(stack, int(ch))
		}
		nodes[i] = xgbNode{feature: int32(f), left: int32(l), right: int32(r), defaultLeft: t.DefaultLeft[i], cond: c}
	}
	return nodes, nil
}

func (m *xgbModel) numOutputs() int { return m.groups }

func (m *xgbModel) output(x []float64) float64 {
	var out [1]float64
	m.outputs(x, out[:])
	return out[0]
}

// outputs writes the model's outputs for x into out: P(class 1) for
// binary:logistic, class probabilities for multi:*, the prediction for
// regression.
func (m *xgbModel) outputs(x []float64, out []float64) {
	var buf [16]float32
	var margin []float32
	if m.groups <= len(buf) {
		margin = buf[:m.groups]
	} else {
		margin = make([]float32, m.groups)
	}
	for g := range margin {
		margin[g] = m.baseMargin
	}
	m.margins(x, margin)
	switch m.objective {
	case "binary:logistic", "reg:logistic":
		out[0] = 1 / (1 + math.Exp(-float64(margin[0])))
	case "count:poisson", "reg:gamma", "reg:tweedie":
		out[0] = math.Exp(float64(margin[0]))
	case "multi:softprob", "multi:softmax":
		softmax(margin, out)
	default:
		out[0] = float64(margin[0])
	}
}

// margins adds each tree's leaf (times its dart weight) to its group's
// margin, in tree order.
func (m *xgbModel) margins(x []float64, margin []float32) {
	fast := m.fast.get()
	if fast == nil || len(x) != fast.Features() {
		for i, t := range m.trees {
			leaf := xgbLeaf(t, x)
			if m.weight != nil {
				leaf *= m.weight[i]
			}
			margin[m.group[i]] += leaf
		}
		return
	}
	// The row as XGBoost compares it: in float32.
	var buf [fastRowOnStack]float64
	row := rowBuffer(buf[:], len(x))
	for i, v := range x {
		row[i] = float64(float32(v))
	}
	var leaves [forest.Chunk]int32
	if len(margin) == 1 && m.weight == nil {
		// One group, no dart weights: the sum in a register, in the
		// same order and float32 precision as below.
		sum := margin[0]
		for first := 0; first < len(m.trees); first += forest.Chunk {
			chunk := leaves[:min(forest.Chunk, len(m.trees)-first)]
			fast.Leaves(row, first, chunk)
			for _, bits := range chunk {
				sum += math.Float32frombits(uint32(bits))
			}
		}
		margin[0] = sum
		return
	}
	for first := 0; first < len(m.trees); first += forest.Chunk {
		chunk := leaves[:min(forest.Chunk, len(m.trees)-first)]
		fast.Leaves(row, first, chunk)
		for k, bits := range chunk {
			leaf := math.Float32frombits(uint32(bits))
			if m.weight != nil {
				leaf *= m.weight[first+k]
			}
			margin[m.group[first+k]] += leaf
		}
	}
}

// xgbLeaf walks one tree: a missing value (NaN) takes the default branch,
// any other goes left when below the split condition, both as float32.
func xgbLeaf(t []xgbNode, x []float64) float32 {
	i := int32(0)
	for {
		n := &t[i]
		if n.feature < 0 {
			return n.cond
		}
		v := x[n.feature]
		switch {
		case math.IsNaN(v):
			if n.defaultLeft {
				i = n.left
			} else {
				i = n.right
			}
		case float32(v) < n.cond:
			i = n.left
		default:
			i = n.right
		}
	}
}

// softmax writes the softmax of margin into out, as XGBoost's does (the
// maximum subtracted first).
func softmax(margin []float32, out []float64) {
	hi := margin[0]
	for _, v := range margin[1:] {
		hi = max(hi, v)
	}
	var sum float64
	for i, v := range margin {
		out[i] = math.Exp(float64(v - hi))
		sum += out[i]
	}
	for i := range out[:len(margin)] {
		out[i] /= sum
	}
}

// sniffXGBoost reports whether data looks like an XGBoost model: JSON whose
// top-level object has a "learner" key, or UBJSON (an object whose first
// key's length carries an integer marker) with one. Both look at the first
// 4 KB only: XGBoost writes "learner" first.
func sniffXGBoost(data []byte) (isJSON, isUBJ bool) {
	if len(data) >= 2 && data[0] == '{' && bytes.IndexByte([]byte("iUIlL$#"), data[1]) >= 0 {
		return false, bytes.Contains(data[:min(len(data), 4096)], []byte("learner"))
	}
	t := bytes.TrimLeft(data, " \t\r\n")
	if len(t) < 2 || t[0] != '{' {
		return false, false
	}
	return bytes.Contains(t[:min(len(t), 4096)], []byte(`"learner"`)), false
}
