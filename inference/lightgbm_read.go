package inference

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/modelfleet/modelfleet/inference/forest"
)

// lgbLines reads a text model line by line; LightGBM accepts \n and \r\n.
type lgbLines struct {
	s    string
	line int // number of the line last returned, from 1
}

func (r *lgbLines) next() (string, bool) {
	if r.s == "" {
		return "", false
	}
	line, rest, _ := strings.Cut(r.s, "\n")
	r.s = rest
	r.line++
	return strings.TrimSuffix(line, "\r"), true
}

// peek returns the next line without consuming it.
func (r *lgbLines) peek() (string, bool) {
	c := *r
	return c.next()
}

// loadLightGBM reads a LightGBM text model as LightGBM's
// GBDT::LoadModelFromString and Tree::Tree(const char*) do (LightGBM 2.x to
// 4.x, file versions v2 to v4), checking every array before any
// prediction.
func loadLightGBM(data []byte) (*Model, error) {
	r := &lgbLines{s: string(data)}
	h, err := readLGBHeader(r)
	if err != nil {
		return nil, err
	}
	numClass, err := lgbHeaderInt(h, "num_class", 1, maxLGBClasses)
	if err != nil {
		return nil, err
	}
	objective, ok := h["objective"]
	if !ok {
		return nil, errors.New("no objective line: the model was trained with a custom objective, so its raw scores have no known meaning")
	}
	obj, task, err := parseLGBObjective(objective, numClass)
	if err != nil {
		return nil, err
	}
	k := numClass
	if _, ok := h["num_tree_per_iteration"]; ok {
		if k, err = lgbHeaderInt(h, "num_tree_per_iteration", 1, maxLGBClasses); err != nil {
			return nil, err
		}
	}
	if k != numClass {
		return nil, fmt.Errorf("num_tree_per_iteration=%d but num_class=%d", k, numClass)
	}
	maxIdx, err := lgbHeaderInt(h, "max_feature_idx", 0, maxLGBFeatures-1)
	if err != nil {
		return nil, err
	}
	names, ok := h["feature_names"]
	if !ok {
		return nil, errors.New("no feature_names line")
	}
	if n := lgbCountFields(names); n != maxIdx+1 {
		return nil, fmt.Errorf("max_feature_idx=%d but feature_names has %d names", maxIdx, n)
	}
	features := make([]string, 0, maxIdx+1)
	// Cloned: the names outlive the file, which they would otherwise keep.
	lgbFields(names, func(f string) error { features = append(features, strings.Clone(f)); return nil })
	infos, ok := h["feature_infos"]
	if !ok {
		return nil, errors.New("no feature_infos line")
	}
	if n := lgbCountFields(infos); n != maxIdx+1 {
		return nil, fmt.Errorf("max_feature_idx=%d but feature_infos has %d entries", maxIdx, n)
	}
	_, average := h["average_output"]
	sizes := -1
	if s, ok := h["tree_sizes"]; ok {
		if sizes = lgbCountFields(s); sizes > maxLGBTrees {
			return nil, fmt.Errorf("tree_sizes lists %d trees: more than %d", sizes, maxLGBTrees)
		}
	}
	m := &lgbModel{k: k, average: average, objective: obj}
	if m.trees, err = readLGBTrees(r, maxIdx, sizes); err != nil {
		return nil, err
	}
	if len(m.trees) == 0 || len(m.trees)%k != 0 {
		return nil, fmt.Errorf("%d trees: want a positive multiple of num_tree_per_iteration=%d", len(m.trees), k)
	}
	m.fast = newLazyForest(func() *forest.Forest { return m.compile(maxIdx + 1) })
	out := &Model{rt: m, format: FormatLightGBM, task: task, classes: 1, features: features}
	switch task {
	case TaskBinary:
		out.classes = 2
	case TaskMulticlass:
		out.classes = numClass
	}
	return out, nil
}

// readLGBHeader reads the "tree" line and the key=value lines up to the
// first tree. A line without "=" is a flag (average_output).
func readLGBHeader(r *lgbLines) (map[string]string, error) {
	first, ok := r.next()
	for ok && strings.TrimSpace(first) == "" {
		first, ok = r.next()
	}
	if !ok {
		return nil, errors.New("reading header: unexpected end of file")
	}
	if first != "tree" {
		return nil, errors.New(`not a LightGBM text model (no "tree" header line)`)
	}
	h := map[string]string{}
	for {
		line, ok := r.peek()
		if !ok {
			return nil, errors.New("reading header: unexpected end of file (no trees)")
		}
		if strings.HasPrefix(line, "Tree=") || isLGBTreesEnd(line) {
			break
		}
		r.next()
		if line == "" {
			continue
		}
		key, value, _ := strings.Cut(line, "=")
		if _, dup := h[key]; dup {
			return nil, fmt.Errorf("line %d: %s appears twice in the header", r.line, lgbQuote(key))
		}
		if len(h) >= 256 {
			return nil, errors.New("more than 256 header lines")
		}
		h[key] = value
	}
	if v, ok := h["version"]; ok && v != "v2" && v != "v3" && v != "v4" {
		return nil, fmt.Errorf("version=%s: want v2, v3 or v4 (LightGBM 2.x to 4.x)", lgbQuote(v))
	}
	return h, nil
}

func lgbHeaderInt(h map[string]string, key string, lo, hi int) (int, error) {
	s, ok := h[key]
	if !ok {
		return 0, fmt.Errorf("no %s line", key)
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s=%s: want an integer from %d to %d", key, lgbQuote(s), lo, hi)
	}
	return v, nil
}

// isLGBTreesEnd reports whether line ends the trees: "end of trees" since
// LightGBM 2.2, "feature importances:" before.
func isLGBTreesEnd(line string) bool {
	return line == "end of trees" || line == "feature importances:"
}

// readLGBTrees reads the "Tree=i" blocks up to "end of trees". sizes is the
// number of trees tree_sizes lists, or -1 without one.
func readLGBTrees(r *lgbLines, maxIdx, sizes int) ([]lgbTree, error) {
	var trees []lgbTree
	var b lgbBudget
	for {
		line, ok := r.next()
		for ok && line == "" {
			line, ok = r.next()
		}
		switch {
		case ok && isLGBTreesEnd(line):
			if sizes >= 0 && sizes != len(trees) {
				return nil, fmt.Errorf(`tree %d: no num_leaves field: found %s after %d of the %d trees tree_sizes lists (truncated file?)`, len(trees), lgbQuote(line), len(trees), sizes)
			}
			return trees, nil
		case !ok:
			return nil, fmt.Errorf(`tree %d: unexpected end of file, want "Tree=%d" or "end of trees" (truncated file?)`, len(trees), len(trees))
		case sizes == len(trees) && line != "Tree="+strconv.Itoa(len(trees)):
			return nil, fmt.Errorf(`line %d, after %d trees: want "end of trees" (tree_sizes lists %d trees), got %s`, r.line, sizes, sizes, lgbQuote(line))
		case line != "Tree="+strconv.Itoa(len(trees)):
			return nil, fmt.Errorf(`tree %d: line %d: want "Tree=%d" or "end of trees", got %s (truncated file or wrong tree_sizes?)`, len(trees), r.line, len(trees), lgbQuote(line))
		case len(trees) >= maxLGBTrees:
			return nil, fmt.Errorf("more than %d trees", maxLGBTrees)
		}
		block, err := readLGBBlock(r)
		if err != nil {
			return nil, fmt.Errorf("tree %d: %v", len(trees), err)
		}
		t, err := parseLGBTree(block, maxIdx, &b)
		if err != nil {
			return nil, fmt.Errorf("tree %d: %v", len(trees), err)
		}
		trees = append(trees, t)
	}
}

// readLGBBlock reads a tree's key=value lines up to a blank line.
func readLGBBlock(r *lgbLines) (map[string]string, error) {
	block := map[string]string{}
	for {
		line, ok := r.next()
		if !ok || line == "" {
			return block, nil
		}
		key, value, found := strings.Cut(line, "=")
		if !found {
			return nil, fmt.Errorf("line %d: want key=value, got %s (truncated file?)", r.line, lgbQuote(line))
		}
		if _, dup := block[key]; dup {
			return nil, fmt.Errorf("line %d: %s appears twice", r.line, lgbQuote(key))
		}
		if len(block) >= 64 {
			return nil, errors.New("more than 64 lines")
		}
		block[key] = value
	}
}

// lgbBudget counts what all trees allocate, against the limits.
type lgbBudget struct{ leaves, catWords, coeffs int }

// parseLGBTree checks one tree block and builds the tree: every array has
// the length num_leaves implies, children form one binary tree, split
// features are at most max_feature_idx, values are finite, decision types
// known, and categorical splits point at bitsets inside cat_threshold.
func parseLGBTree(p map[string]string, maxIdx int, b *lgbBudget) (lgbTree, error) {
	var t lgbTree
	s, ok := p["num_leaves"]
	if !ok {
		return t, errors.New("no num_leaves field")
	}
	numLeaves, err := strconv.Atoi(s)
	if err != nil || numLeaves < 1 || numLeaves > maxLGBLeaves-b.leaves {
		return t, fmt.Errorf("num_leaves=%s: want an integer from 1 to %d (all trees together)", lgbQuote(s), maxLGBLeaves)
	}
	b.leaves += numLeaves
	s, ok = p["num_cat"]
	if !ok {
		return t, errors.New("no num_cat field")
	}
	numCat, err := strconv.Atoi(s)
	if err != nil || numCat < 0 || numCat > numLeaves-1 {
		return t, fmt.Errorf("num_cat=%s: want an integer from 0 to num_leaves-1=%d", lgbQuote(s), numLeaves-1)
	}
	if t.leaf, err = lgbFloats(p, "leaf_value", numLeaves, true); err != nil {
		return t, err
	}
	if s, ok := p["is_linear"]; ok {
		switch s {
		case "0":
		case "1":
			t.linear = true
		default:
			return t, fmt.Errorf("is_linear=%s: want 0 or 1", lgbQuote(s))
		}
	}
	if t.linear {
		if err := t.parseLinear(p, numLeaves, maxIdx, b); err != nil {
			return t, err
		}
	}
	if numLeaves == 1 {
		return t, nil
	}
	n := numLeaves - 1
	feature, err := lgbInts(p, "split_feature", n)
	if err != nil {
		return t, err
	}
	threshold, err := lgbFloats(p, "threshold", n, false)
	if err != nil {
		return t, err
	}
	left, err := lgbInts(p, "left_child", n)
	if err != nil {
		return t, err
	}
	right, err := lgbInts(p, "right_child", n)
	if err != nil {
		return t, err
	}
	decision := make([]int32, n) // LightGBM's default when the line is absent
	if _, ok := p["decision_type"]; ok {
		if decision, err = lgbInts(p, "decision_type", n); err != nil {
			return t, err
		}
	}
	var bounds []int32
	if numCat > 0 {
		if bounds, err = lgbInts(p, "cat_boundaries", numCat+1); err != nil {
			return t, err
		}
		if bounds[0] != 0 {
			return t, errors.New("cat_boundaries does not start at 0")
		}
		for i := 1; i < len(bounds); i++ {
			if bounds[i] < bounds[i-1] {
				return t, errors.New("cat_boundaries is not increasing")
			}
		}
		words := int(bounds[numCat])
		if words > maxLGBCatWords-b.catWords {
			return t, fmt.Errorf("cat_boundaries ends at %d: more than %d bitset words (all trees together)", words, maxLGBCatWords)
		}
		b.catWords += words
		if t.cats, err = lgbUints(p, "cat_threshold", words); err != nil {
			return t, fmt.Errorf("%v (cat_boundaries does not match num_cat=%d and cat_threshold)", err, numCat)
		}
	}
	t.nodes = make([]lgbNode, n)
	for i := range t.nodes {
		d := decision[i]
		if d < 0 || d > 15 || d>>2&3 == 3 {
			return t, fmt.Errorf("node %d: decision_type %d has an unknown missing type or bits", i, d)
		}
		f := feature[i]
		if f < 0 || int(f) > maxIdx {
			return t, fmt.Errorf("node %d splits on feature %d, beyond max_feature_idx=%d", i, f, maxIdx)
		}
		node := lgbNode{threshold: threshold[i], feature: f, left: left[i], right: right[i], decision: uint8(d)}
		if d&lgbCategorical != 0 {
			c := threshold[i]
			if !(c >= 0 && c < float64(numCat)) || c != math.Trunc(c) {
				return t, fmt.Errorf("node %d: categorical threshold %v is not a bitset index below num_cat=%d", i, c, numCat)
			}
			node.catLo, node.catHi = bounds[int(c)], bounds[int(c)+1]
		}
		t.nodes[i] = node
	}
	return t, checkShape(left, right, numLeaves)
}

// parseLinear reads a linear tree's leaf models. LightGBM writes
// leaf_const, num_features, leaf_features and leaf_coeff for every linear
// tree; leaf_features and leaf_coeff hold each leaf's entries in turn.
func (t *lgbTree) parseLinear(p map[string]string, numLeaves, maxIdx int, b *lgbBudget) error {
	if _, ok := p["leaf_const"]; !ok {
		return errors.New("is_linear=1 but no leaf_const field: linear trees carry leaf_const, num_features, leaf_features and leaf_coeff")
	}
	var err error
	if t.leafConst, err = lgbFloats(p, "leaf_const", numLeaves, true); err != nil {
		return err
	}
	counts, err := lgbInts(p, "num_features", numLeaves)
	if err != nil {
		return err
	}
	t.off = make([]int32, numLeaves+1)
	total := 0
	for l, c := range counts {
		if c < 0 || int(c) > maxIdx+1 {
			return fmt.Errorf("leaf %d: num_features=%d, want 0 to %d", l, c, maxIdx+1)
		}
		total += int(c)
		if total > maxLGBCoeffs-b.coeffs {
			return fmt.Errorf("more than %d linear coefficients (all trees together)", maxLGBCoeffs)
		}
		t.off[l+1] = int32(total)
	}
	b.coeffs += total
	if t.feat, err = lgbInts(p, "leaf_features", total); err != nil {
		return err
	}
	for i, f := range t.feat {
		if f < 0 || int(f) > maxIdx {
			return fmt.Errorf("leaf_features[%d]=%d, beyond max_feature_idx=%d", i, f, maxIdx)
		}
	}
	t.coeff, err = lgbFloats(p, "leaf_coeff", total, true)
	return err
}

// lgbFields calls f on each field of s, LightGBM's arrays and lists being
// separated by spaces (and, leniently, tabs). Counting and parsing go
// through it alike, so a count checked is the count parsed.
func lgbFields(s string, f func(string) error) error {
	for i := 0; i < len(s); {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '\t' {
			j++
		}
		if j > i {
			if err := f(s[i:j]); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

// lgbCountFields counts the fields of s without allocating.
func lgbCountFields(s string) int {
	n := 0
	lgbFields(s, func(string) error { n++; return nil })
	return n
}

// lgbField returns the array line key after checking it has n fields, so that
// nothing is allocated for a length the line does not back.
func lgbField(p map[string]string, key string, n int) (string, error) {
	s, ok := p[key]
	if !ok {
		return "", fmt.Errorf("no %s field", key)
	}
	if got := lgbCountFields(s); got != n {
		return "", fmt.Errorf("%s has %d values, want %d", key, got, n)
	}
	return s, nil
}

// lgbArray parses the array line key of n fields with parse, whose error
// is the message.
func lgbArray[T any](p map[string]string, key string, n int, parse func(string) (T, error)) ([]T, error) {
	s, err := lgbField(p, key, n)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, n)
	err = lgbFields(s, func(f string) error {
		v, err := parse(f)
		if err != nil {
			return fmt.Errorf("%s: %v", key, err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// lgbFloats parses an array of doubles: never NaN, and finite when finite
// is set (thresholds may be infinite, values and coefficients not).
func lgbFloats(p map[string]string, key string, n int, finite bool) ([]float64, error) {
	return lgbArray(p, key, n, func(f string) (float64, error) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%s is not a number", lgbQuote(f))
		}
		if math.IsNaN(v) || (finite && math.IsInf(v, 0)) {
			return 0, fmt.Errorf("value %v is not finite", v)
		}
		return v, nil
	})
}

func lgbInts(p map[string]string, key string, n int) ([]int32, error) {
	return lgbArray(p, key, n, func(f string) (int32, error) {
		v, err := strconv.ParseInt(f, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%s is not a 32-bit integer", lgbQuote(f))
		}
		return int32(v), nil
	})
}

func lgbUints(p map[string]string, key string, n int) ([]uint32, error) {
	return lgbArray(p, key, n, func(f string) (uint32, error) {
		v, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%s is not a 32-bit unsigned integer", lgbQuote(f))
		}
		return uint32(v), nil
	})
}

// checkShape checks that the child arrays form one binary tree: every node
// and leaf is reached from the root exactly once (reaching all numLeaves
// leaves implies reaching all numLeaves-1 nodes). Anything else could send
// prediction out of range or round in circles.
func checkShape(left, right []int32, numLeaves int) error {
	n := len(left)
	seenNode := make([]bool, n)
	seenLeaf := make([]bool, numLeaves)
	seenNode[0] = true
	for stack := []int32{0}; len(stack) > 0; {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, c := range [2]int32{left[i], right[i]} {
			switch {
			case c >= 0 && (int(c) >= n || seenNode[c]):
				return fmt.Errorf("node %d: child node %d is out of range or reached twice", i, c)
			case c >= 0:
				seenNode[c] = true
				stack = append(stack, c)
			case int(^c) >= numLeaves || seenLeaf[^c]:
				return fmt.Errorf("node %d: leaf %d is out of range or reached twice", i, ^c)
			default:
				seenLeaf[^c] = true
			}
		}
	}
	for l, ok := range seenLeaf {
		if !ok {
			return fmt.Errorf("leaf %d is not reachable from the root", l)
		}
	}
	return nil
}

// lgbQuote cuts s to 40 bytes for an error message, quoting it unless it
// is a plain word (a number reads num_leaves=12, not num_leaves="12").
func lgbQuote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' || s[i] == '"' {
			return strconv.Quote(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}
