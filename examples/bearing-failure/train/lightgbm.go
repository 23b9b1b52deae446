package main

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/examples/trees"
)

// writeLightGBM writes e as a LightGBM v3 text model file, field for field
// what LightGBM's own SaveModelToString emits for numerical splits, so both
// leaves and LightGBM can load it. Floats are written in their shortest
// exact form, which is what makes the loaded model predict bit-identically.
func (e *ensemble) writeLightGBM(w io.Writer) error {
	var trees strings.Builder
	sizes := make([]string, len(e.trees))
	used := make([]int, len(e.Features))
	for i, t := range e.trees {
		block := fmt.Sprintf("Tree=%d\n%s\n", i, t.text())
		sizes[i] = strconv.Itoa(len(block))
		trees.WriteString(block)
		for _, f := range t.feature {
			used[f]++
		}
	}
	infos := make([]string, len(e.Features))
	for f := range infos {
		infos[f] = "[" + num(e.min[f]) + ":" + num(e.max[f]) + "]"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "tree\nversion=v3\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=%d\n", len(e.Features)-1)
	fmt.Fprintf(&b, "objective=binary sigmoid:1\nfeature_names=%s\nfeature_infos=%s\ntree_sizes=%s\n\n",
		strings.Join(e.Features, " "), strings.Join(infos, " "), strings.Join(sizes, " "))
	b.WriteString(trees.String())
	b.WriteString("end of trees\n\nfeature_importances:\n")
	order := make([]int, len(used))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(used[b], used[a]) })
	for _, f := range order {
		if used[f] > 0 {
			fmt.Fprintf(&b, "%s=%d\n", e.Features[f], used[f])
		}
	}
	fmt.Fprintf(&b, "\nparameters:\n[boosting: gbdt]\n[objective: binary]\n[num_iterations: %d]\n[learning_rate: %s]\n"+
		"[max_depth: %d]\n[min_data_in_leaf: %d]\n[lambda_l2: %s]\n[max_bin: %d]\n[boost_from_average: 1]\n\nend of parameters\n\npandas_categorical:null\n",
		e.Trees, num(e.Rate), e.Depth, e.MinLeaf, num(e.Lambda), e.MaxBins)
	_, err := io.WriteString(w, b.String())
	return err
}

// text is one tree block without its "Tree=i" line, ending in a blank line.
// decision_type 2 is a numerical split, missing values (none here) going left.
func (t *tree) text() string {
	decision := make([]int, len(t.feature))
	for i := range decision {
		decision[i] = 2
	}
	lines := []string{
		"num_leaves=" + strconv.Itoa(len(t.leafValue)),
		"num_cat=0",
		"split_feature=" + join(t.feature, strconv.Itoa),
		"split_gain=" + join(t.gain, num),
		"threshold=" + join(t.threshold, num),
		"decision_type=" + join(decision, strconv.Itoa),
		"left_child=" + join(t.left, strconv.Itoa),
		"right_child=" + join(t.right, strconv.Itoa),
		"leaf_value=" + join(t.leafValue, num),
		"leaf_weight=" + join(t.leafWeight, num),
		"leaf_count=" + join(t.leafCount, strconv.Itoa),
		"internal_value=" + join(t.internalValue, num),
		"internal_weight=" + join(t.internalWeight, num),
		"internal_count=" + join(t.internalCount, strconv.Itoa),
		"is_linear=0",
		"shrinkage=" + num(t.shrinkage),
	}
	return strings.Join(lines, "\n") + "\n\n"
}

// otherFormats writes the same trees as XGBoost JSON and ONNX (the
// examples/trees writers), keyed by format.
func (e *ensemble) otherFormats() (map[string][]byte, error) {
	t := &trees.Ensemble{Features: e.Features, Objective: trees.Binary}
	for _, tr := range e.trees {
		t.Trees = append(t.Trees, trees.Tree{Feature: tr.feature, Threshold: tr.threshold, Left: tr.left, Right: tr.right, Leaf: tr.leafValue})
	}
	var xgb bytes.Buffer
	if err := t.WriteXGBoostJSON(&xgb); err != nil {
		return nil, err
	}
	onnx, err := t.ONNX()
	if err != nil {
		return nil, err
	}
	return map[string][]byte{modelfleet.FormatXGBoost: xgb.Bytes(), modelfleet.FormatONNX: onnx}, nil
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func join[T any](s []T, format func(T) string) string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = format(v)
	}
	return strings.Join(out, " ")
}
