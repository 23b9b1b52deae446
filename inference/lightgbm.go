package inference

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/dmitryikh/leaves"
	"github.com/dmitryikh/leaves/util"
)

// lgbModel is a single-output LightGBM model through leaves.
type lgbModel struct{ ens *leaves.Ensemble }

func (m lgbModel) numOutputs() int { return 1 }

func (m lgbModel) output(x []float64) float64 { return m.ens.PredictSingle(x, 0) }

func (m lgbModel) outputs(x []float64, out []float64) { out[0] = m.output(x) }

// loadLightGBM reads a LightGBM text model with a single output: binary or
// regression. The file is checked before leaves sees it.
func loadLightGBM(data []byte) (*Model, error) {
	names, err := checkLightGBM(data)
	if err != nil {
		return nil, err
	}
	// checkLightGBM read the header already, so this cannot fail.
	h, _ := util.ReadParamsUntilBlank(bufio.NewReader(bytes.NewReader(data)))
	objective, _, _ := strings.Cut(h["objective"], " ")
	ens, err := leaves.LGEnsembleFromReader(bufio.NewReader(bytes.NewReader(data)), true)
	if err != nil {
		return nil, err
	}
	if ens.NOutputGroups() != 1 {
		return nil, fmt.Errorf("%d outputs: only single-output models are supported", ens.NOutputGroups())
	}
	task := TaskRegression
	if objective == "binary" {
		task = TaskBinary
	}
	// The file's feature_names, since leaves reports 0 features for a
	// one-feature model.
	m := &Model{rt: lgbModel{ens}, format: FormatLightGBM, task: task, classes: 1, features: names}
	if task == TaskBinary {
		m.classes = 2
	}
	return m, nil
}

// params is the part of leaves' parsed "key=value" block that checkTree
// uses. Reading the file with leaves' own parser means the checks below see
// exactly what leaves will build its trees from.
type params interface {
	ToInt(key string) (int, error)
	ToStrSlice(key string) ([]string, error)
	ToFloat64Slice(key string) ([]float64, error)
	ToInt32Slice(key string) ([]int32, error)
	ToUint32Slice(key string) ([]uint32, error)
}

// checkLightGBM rejects text models that leaves would load but then panic,
// loop forever, allocate without bound or silently mispredict on: arrays
// shorter than num_leaves, child indices out of range or shared (not a
// tree), split features beyond max_feature_idx, bad categorical bitsets,
// linear trees, multi-output models and truncated files. It returns the
// feature names.
func checkLightGBM(data []byte) ([]string, error) {
	r := bufio.NewReader(bytes.NewReader(data))
	h, err := util.ReadParamsUntilBlank(r)
	if err != nil {
		return nil, fmt.Errorf("reading header: %v", eofText(err))
	}
	if _, ok := h["tree"]; !ok {
		return nil, errors.New(`not a LightGBM text model (no "tree" header line)`)
	}
	if n, err := h.ToInt("num_class"); err != nil {
		return nil, err
	} else if n != 1 {
		return nil, fmt.Errorf("num_class=%d: only single-output models are supported", n)
	}
	maxIdx, err := h.ToInt("max_feature_idx")
	if err != nil {
		return nil, err
	}
	names, err := h.ToStrSlice("feature_names")
	if err != nil {
		return nil, err
	}
	if maxIdx < 0 || len(names) != maxIdx+1 {
		return nil, fmt.Errorf("max_feature_idx=%d but feature_names has %d names", maxIdx, len(names))
	}
	sizes, err := h.ToStrSlice("tree_sizes")
	if err != nil {
		return nil, err
	}
	for i := range sizes {
		t, err := util.ReadParamsUntilBlank(r)
		if err != nil {
			return nil, fmt.Errorf("tree %d: %v", i, eofText(err))
		}
		if err := checkTree(&t, maxIdx); err != nil {
			return nil, fmt.Errorf("tree %d: %v", i, err)
		}
	}
	for {
		line, err := r.ReadString('\n')
		if line = strings.TrimSpace(line); line == "end of trees" {
			return names, nil
		} else if line != "" || err != nil {
			if len(line) > 40 {
				line = line[:40] + "..."
			}
			return nil, fmt.Errorf(`want "end of trees" after %d trees, got %q (truncated file or wrong tree_sizes?)`, len(sizes), line)
		}
	}
}

// checkTree checks one tree block. LightGBM numbers internal nodes from 0
// (the root) and encodes leaf i as child ^i.
func checkTree(p params, maxIdx int) error {
	numLeaves, err := p.ToInt("num_leaves")
	if err != nil {
		return err
	}
	values, err := p.ToFloat64Slice("leaf_value")
	if err != nil {
		return err
	}
	if numLeaves < 1 || len(values) != numLeaves {
		return fmt.Errorf("num_leaves=%d but leaf_value has %d values", numLeaves, len(values))
	}
	for _, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("leaf value %v is not finite", v)
		}
	}
	if linear, err := p.ToInt("is_linear"); err == nil && linear != 0 {
		return errors.New("linear trees are not supported")
	}
	if numLeaves == 1 {
		return nil
	}
	n := numLeaves - 1
	feature, err1 := p.ToUint32Slice("split_feature")
	threshold, err2 := p.ToFloat64Slice("threshold")
	decision, err3 := p.ToUint32Slice("decision_type")
	left, err4 := p.ToInt32Slice("left_child")
	right, err5 := p.ToInt32Slice("right_child")
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return err
	}
	for _, a := range []struct {
		key string
		len int
	}{{"split_feature", len(feature)}, {"threshold", len(threshold)}, {"decision_type", len(decision)},
		{"left_child", len(left)}, {"right_child", len(right)}} {
		if a.len != n {
			return fmt.Errorf("num_leaves=%d but %s has %d values, want %d", numLeaves, a.key, a.len, n)
		}
	}
	for i, f := range feature {
		if int64(f) > int64(maxIdx) {
			return fmt.Errorf("node %d splits on feature %d, beyond max_feature_idx=%d", i, f, maxIdx)
		}
	}
	if err := checkCategorical(p, threshold, decision); err != nil {
		return err
	}
	return checkShape(left, right, numLeaves)
}

// checkCategorical checks that every categorical split points at a bitset
// inside cat_threshold.
func checkCategorical(p params, threshold []float64, decision []uint32) error {
	numCat, err := p.ToInt("num_cat")
	if err != nil {
		return err
	}
	var bounds, bits []uint32
	if numCat > 0 {
		var err1, err2 error
		bounds, err1 = p.ToUint32Slice("cat_boundaries")
		bits, err2 = p.ToUint32Slice("cat_threshold")
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		if len(bounds) != numCat+1 || bounds[0] != 0 || int(bounds[numCat]) != len(bits) {
			return fmt.Errorf("cat_boundaries does not match num_cat=%d and cat_threshold", numCat)
		}
		for i := 1; i < len(bounds); i++ {
			if bounds[i] < bounds[i-1] {
				return errors.New("cat_boundaries is not increasing")
			}
		}
	}
	for i, d := range decision {
		if d&1 == 0 {
			continue
		}
		if t := threshold[i]; t < 0 || t >= float64(numCat) || t != math.Trunc(t) {
			return fmt.Errorf("node %d: categorical threshold %v is not below num_cat=%d", i, t, numCat)
		}
	}
	return nil
}

// checkShape checks that the child arrays form one binary tree: every node
// and leaf is reached from the root exactly once (reaching all numLeaves
// leaves implies reaching all numLeaves-1 nodes). Anything else could send
// leaves' prediction loop out of range or round in circles.
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

func eofText(err error) error {
	if errors.Is(err, io.EOF) {
		return errors.New("unexpected end of file")
	}
	return err
}
