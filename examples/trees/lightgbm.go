package trees

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// WriteLightGBM writes e as a LightGBM text model in the layout LightGBM's
// own GBDT::SaveModelToString writes (version v3, which LightGBM 3.x and
// 4.x load, as does the leaves library): the header, one "Tree=i" block per
// tree with its byte size in tree_sizes, "end of trees", the feature
// importances (split counts) and the parameters. Every split is numerical
// with decision_type 2 (default left, no missing-value type); floats are
// written in their shortest exact form, so a reader predicts bit-identically.
func (e *Ensemble) WriteLightGBM(w io.Writer) error {
	if err := e.Check(); err != nil {
		return err
	}
	objective := "binary sigmoid:1"
	if e.Objective == Regression {
		objective = "regression"
	}
	lo, hi := e.featureRanges()
	infos := make([]string, len(e.Features))
	for f := range infos {
		if lo[f] > hi[f] {
			infos[f] = "none" // LightGBM's word for a feature no tree uses
		} else {
			infos[f] = "[" + num(lo[f]) + ":" + num(hi[f]) + "]"
		}
	}
	var trees strings.Builder
	sizes := make([]string, len(e.Trees))
	used := make([]int, len(e.Features))
	for i := range e.Trees {
		block := fmt.Sprintf("Tree=%d\n%s\n", i, e.Trees[i].lightGBMText())
		sizes[i] = strconv.Itoa(len(block))
		trees.WriteString(block)
		for _, f := range e.Trees[i].Feature {
			used[f]++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "tree\nversion=v3\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=%d\n", len(e.Features)-1)
	fmt.Fprintf(&b, "objective=%s\nfeature_names=%s\nfeature_infos=%s\ntree_sizes=%s\n\n",
		objective, strings.Join(e.Features, " "), strings.Join(infos, " "), strings.Join(sizes, " "))
	b.WriteString(trees.String())
	b.WriteString("end of trees\n\nfeature_importances:\n")
	// By count, most used first (stable: ties in feature order).
	order := make([]int, len(used))
	for f := range order {
		order[f] = f
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(used[b], used[a]) })
	for _, f := range order {
		if used[f] > 0 {
			fmt.Fprintf(&b, "%s=%d\n", e.Features[f], used[f])
		}
	}
	fmt.Fprintf(&b, "\nparameters:\n[boosting: gbdt]\n[objective: %s]\n[num_iterations: %d]\n\nend of parameters\n\npandas_categorical:null\n",
		strings.Fields(objective)[0], len(e.Trees))
	_, err := io.WriteString(w, b.String())
	return err
}

// lightGBMText is one tree block without its "Tree=i" line, ending in a
// blank line. The statistics LightGBM keeps for training (gains, weights,
// counts, internal values) are not known here and written as zeros and
// ones, which no predictor reads.
func (t *Tree) lightGBMText() string {
	n := len(t.Feature)
	zeros, ones, decision := make([]float64, n), make([]int, n), make([]int, n)
	for i := range decision {
		decision[i], ones[i] = 2, 1
	}
	leafCount := make([]int, n+1)
	for i := range leafCount {
		leafCount[i] = 1
	}
	lines := []string{"num_leaves=" + strconv.Itoa(n+1), "num_cat=0"}
	if n > 0 {
		lines = append(lines,
			"split_feature="+join(t.Feature, strconv.Itoa),
			"split_gain="+join(zeros, num),
			"threshold="+join(t.Threshold, num),
			"decision_type="+join(decision, strconv.Itoa),
			"left_child="+join(t.Left, strconv.Itoa),
			"right_child="+join(t.Right, strconv.Itoa))
	}
	lines = append(lines,
		"leaf_value="+join(t.Leaf, num),
		"leaf_weight="+join(leafCount, strconv.Itoa),
		"leaf_count="+join(leafCount, strconv.Itoa))
	if n > 0 {
		lines = append(lines,
			"internal_value="+join(zeros, num),
			"internal_weight="+join(ones, strconv.Itoa),
			"internal_count="+join(ones, strconv.Itoa))
	}
	lines = append(lines, "is_linear=0", "shrinkage=1")
	return strings.Join(lines, "\n") + "\n\n"
}

// featureRanges is the range of each feature's thresholds (lo > hi for a
// feature no tree splits on).
func (e *Ensemble) featureRanges() (lo, hi []float64) {
	lo, hi = make([]float64, len(e.Features)), make([]float64, len(e.Features))
	for f := range lo {
		lo[f], hi[f] = 1, 0
	}
	seen := make([]bool, len(e.Features))
	for _, t := range e.Trees {
		for i, f := range t.Feature {
			v := t.Threshold[i]
			if !seen[f] || v < lo[f] {
				lo[f] = v
			}
			if !seen[f] || v > hi[f] {
				hi[f] = v
			}
			seen[f] = true
		}
	}
	return lo, hi
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func join[T any](s []T, format func(T) string) string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = format(v)
	}
	return strings.Join(out, " ")
}
