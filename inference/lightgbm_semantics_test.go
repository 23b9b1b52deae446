package inference

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// lgbFile writes a LightGBM text model by the format LightGBM's
// SaveModelToString writes, over features f0..f{features-1}; header holds
// extra header lines ("average_output\n").
func lgbFile(objective string, numClass, features int, header string, trees ...string) string {
	var body strings.Builder
	sizes := make([]string, len(trees))
	for i, t := range trees {
		block := fmt.Sprintf("Tree=%d\n%s\n\n", i, t)
		sizes[i] = fmt.Sprint(len(block))
		body.WriteString(block)
	}
	names, infos := make([]string, features), make([]string, features)
	for i := range names {
		names[i], infos[i] = fmt.Sprintf("f%d", i), "[-9:9]"
	}
	return fmt.Sprintf("tree\nversion=v4\nnum_class=%d\nnum_tree_per_iteration=%d\nlabel_index=0\nmax_feature_idx=%d\nobjective=%s\n%sfeature_names=%s\nfeature_infos=%s\ntree_sizes=%s\n\n",
		numClass, numClass, features-1, objective, header, strings.Join(names, " "), strings.Join(infos, " "), strings.Join(sizes, " ")) +
		body.String() + "end of trees\n\nfeature_importances:\n\nparameters:\n[boosting: gbdt]\n\nend of parameters\n\npandas_categorical:null\n"
}

// stump splits f0 at threshold with the given decision_type: raw -1 on the
// left, +1 on the right.
func stump(threshold string, decision int) string {
	return fmt.Sprintf("num_leaves=2\nnum_cat=0\nsplit_feature=0\nsplit_gain=1\nthreshold=%s\ndecision_type=%d\n"+
		"left_child=-1\nright_child=-2\nleaf_value=-1 1\nleaf_weight=1 1\nleaf_count=1 1\ninternal_value=0\ninternal_weight=2\ninternal_count=2\nis_linear=0\nshrinkage=1", threshold, decision)
}

func leafOnly(v float64) string {
	return fmt.Sprintf("num_leaves=1\nnum_cat=0\nsplit_feature=\nsplit_gain=\nthreshold=\ndecision_type=\nleft_child=\nright_child=\nleaf_value=%v\nleaf_weight=\nleaf_count=\ninternal_value=\ninternal_weight=\ninternal_count=\nis_linear=0\nshrinkage=1", v)
}

func predictOne(t *testing.T, text string, x ...float64) []float64 {
	t.Helper()
	m, err := Load(modelfleet.FormatLightGBM, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Probabilities(x, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLightGBMMissingValues checks Tree::NumericalDecision for every
// missing type (decision_type bits 2-3) and default side (bit 1), worked
// out by hand from LightGBM's tree.h: NaN is missing only for type NaN and
// reads as 0 otherwise; type Zero sends 0 (and anything within
// kZeroThreshold=1e-35 of it, which the predictor reads as 0) to the
// default side; everything else goes left when x <= threshold. The real
// files of the golden tests exercise None and NaN; Zero is only here.
func TestLightGBMMissingValues(t *testing.T) {
	nan := math.NaN()
	for _, c := range []struct {
		decision  int
		threshold string
		x         float64
		want      float64 // -1 left, +1 right
	}{
		// None: NaN is 0.
		{0, "0.5", nan, -1}, {0, "-0.5", nan, 1}, {2, "-0.5", nan, 1}, {0, "0.5", 0.7, 1}, {0, "0.5", 0.5, -1},
		// Zero (4: default right, 6: default left): 0, NaN and |x| <= 1e-35 are missing.
		{4, "-0.5", 0, 1}, {6, "0.5", 0, -1}, {4, "0.5", 0, 1}, {6, "-0.5", 0, -1},
		{4, "0.5", nan, 1}, {6, "-0.5", nan, -1}, {4, "0.5", 1e-36, 1}, {6, "-0.5", -1e-36, -1},
		{4, "0.5", 1e-30, -1}, {6, "-0.5", -1e-30, 1}, {4, "0.5", 0.3, -1}, {6, "0.5", 0.7, 1},
		// NaN (8: default right, 10: default left): only NaN is missing.
		{8, "0.5", nan, 1}, {10, "-0.5", nan, -1}, {8, "0.5", 0, -1}, {10, "-0.5", 0, 1}, {10, "0.5", 0.7, 1},
		// A value within kZeroThreshold of 0 is 0 for every type.
		// (Read as given, -5e-36 <= -1e-36 would go left and 5e-36 > 1e-36 right.)
		{0, "-1e-36", -5e-36, 1}, {2, "1e-36", 5e-36, -1}, {8, "-1e-36", -5e-36, 1}, {0, "-1e-36", -2e-35, -1},
	} {
		got := predictOne(t, lgbFile("regression", 1, 1, "", stump(c.threshold, c.decision)), c.x)
		if got[0] != c.want {
			t.Errorf("decision_type=%d threshold=%s x=%v: %v, want %v", c.decision, c.threshold, c.x, got[0], c.want)
		}
	}
}

// TestLightGBMCategorical checks Tree::CategoricalDecision by hand: the
// category is the value truncated toward zero; NaN, negative categories,
// categories past int32 and those beyond the bitset go right; a set bit
// goes left. The bitset here is {0, 1, 3} in word 0 and {32} in word 1.
func TestLightGBMCategorical(t *testing.T) {
	tree := "num_leaves=2\nnum_cat=1\nsplit_feature=0\nsplit_gain=1\nthreshold=0\ndecision_type=1\nleft_child=-1\nright_child=-2\n" +
		"leaf_value=-1 1\nleaf_weight=1 1\nleaf_count=1 1\ninternal_value=0\ninternal_weight=2\ninternal_count=2\n" +
		"cat_boundaries=0 2\ncat_threshold=11 1\nis_linear=0\nshrinkage=1"
	text := lgbFile("regression", 1, 1, "", tree)
	for _, c := range []struct{ x, want float64 }{
		{0, -1}, {1, -1}, {2, 1}, {3, -1}, {3.9, -1}, {4, 1}, {31, 1}, {32, -1}, {32.5, -1}, {33, 1}, {64, 1},
		{-0.5, -1}, {1e-36, -1}, {-1, 1}, {-3, 1}, {math.NaN(), 1}, {math.Inf(1), 1}, {math.Inf(-1), 1}, {1e10, 1}, {1 << 31, 1},
	} {
		if got := predictOne(t, text, c.x); got[0] != c.want {
			t.Errorf("category %v: %v, want %v", c.x, got[0], c.want)
		}
	}
	// Missing type NaN on a categorical split changes nothing: NaN goes right.
	nanType := strings.Replace(text, "decision_type=1", "decision_type=9", 1)
	if got := predictOne(t, nanType, math.NaN()); got[0] != 1 {
		t.Errorf("NaN with missing type NaN: %v, want 1", got[0])
	}
}

// TestLightGBMObjectives checks each objective's ConvertOutput on raw
// scores worked out by hand, and the task and classes it gives the model.
func TestLightGBMObjectives(t *testing.T) {
	raw := 0.75 // one tree whose only leaf is 0.75
	sig := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	for _, c := range []struct {
		objective string
		task      string
		want      float64
	}{
		{"binary sigmoid:1", TaskBinary, sig(raw)},
		{"binary sigmoid:2.5", TaskBinary, sig(2.5 * raw)},
		{"regression", TaskRegression, raw},
		{"regression sqrt", TaskRegression, raw * raw},
		{"regression_l1", TaskRegression, raw},
		{"huber", TaskRegression, raw},
		{"huber sqrt", TaskRegression, raw}, // LightGBM disables sqrt for huber
		{"fair sqrt", TaskRegression, raw * raw},
		{"quantile", TaskRegression, raw},
		{"mape", TaskRegression, raw},
		{"poisson", TaskRegression, math.Exp(raw)},
		{"gamma", TaskRegression, math.Exp(raw)},
		{"tweedie", TaskRegression, math.Exp(raw)},
		{"cross_entropy", TaskRegression, sig(raw)},
		{"cross_entropy_lambda", TaskRegression, math.Log(1 + math.Exp(raw))},
		{"mse", TaskRegression, raw}, // an alias, as ParseObjectiveAlias reads it
	} {
		text := lgbFile(c.objective, 1, 1, "", leafOnly(raw))
		m, err := Load(modelfleet.FormatLightGBM, []byte(text))
		if err != nil {
			t.Errorf("%s: %v", c.objective, err)
			continue
		}
		got, err := m.Predict([]float64{0})
		if err != nil || math.Abs(got-c.want) > 1e-15 || m.Task() != c.task {
			t.Errorf("%s: %v, %v, task %s; want %v, %s", c.objective, got, err, m.Task(), c.want, c.task)
		}
	}
	// sqrt squares a negative raw score to a negative value.
	if got := predictOne(t, lgbFile("regression sqrt", 1, 1, "", leafOnly(-0.5)), 0); got[0] != -0.25 {
		t.Errorf("regression sqrt of -0.5: %v, want -0.25", got[0])
	}
}

// TestLightGBMMulticlass checks the per-class sums (tree i belongs to class
// i mod num_class), softmax, multiclassova's per-class sigmoid, and
// average_output, by hand.
func TestLightGBMMulticlass(t *testing.T) {
	// Two iterations of three classes: class c's trees are 3*i + c.
	trees := []string{stump("0", 2), leafOnly(0.5), leafOnly(-1), leafOnly(0.25), stump("0", 2), leafOnly(2)}
	raw := func(x float64) []float64 {
		s := -1.0
		if x > 0 {
			s = 1
		}
		return []float64{s + 0.25, 0.5 + s, -1 + 2}
	}
	softmax := func(r []float64) []float64 {
		out := make([]float64, len(r))
		var sum float64
		for i, v := range r {
			out[i] = math.Exp(v)
			sum += out[i]
		}
		for i := range out {
			out[i] /= sum
		}
		return out
	}
	for _, x := range []float64{-1, 1} {
		m, err := Load(modelfleet.FormatLightGBM, []byte(lgbFile("multiclass num_class:3", 3, 1, "", trees...)))
		if err != nil {
			t.Fatal(err)
		}
		if m.Task() != TaskMulticlass || m.NumClasses() != 3 {
			t.Fatalf("task %s, %d classes", m.Task(), m.NumClasses())
		}
		got, _ := m.Probabilities([]float64{x}, nil)
		want := softmax(raw(x))
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-15 {
				t.Errorf("multiclass x=%v: %v, want %v", x, got, want)
			}
		}
		if p, _ := m.Predict([]float64{x}); p != float64(argmax(want)) {
			t.Errorf("multiclass x=%v: Predict %v, want class %d", x, p, argmax(want))
		}
		ova := predictOne(t, lgbFile("multiclassova num_class:3 sigmoid:1.5", 3, 1, "", trees...), x)
		for i, r := range raw(x) {
			if w := 1 / (1 + math.Exp(-1.5*r)); math.Abs(ova[i]-w) > 1e-15 {
				t.Errorf("multiclassova x=%v class %d: %v, want %v", x, i, ova[i], w)
			}
		}
		forest := predictOne(t, lgbFile("multiclass num_class:3", 3, 1, "average_output\n", trees...), x)
		r := raw(x)
		for i := range r {
			r[i] /= 2 // two iterations
		}
		want = softmax(r)
		for i := range want {
			if math.Abs(forest[i]-want[i]) > 1e-15 {
				t.Errorf("multiclass forest x=%v: %v, want %v", x, forest, want)
			}
		}
	}
	// A binary random forest: the average of the trees, then the sigmoid.
	got := predictOne(t, lgbFile("binary sigmoid:1", 1, 1, "average_output\n", leafOnly(1), leafOnly(2), leafOnly(4.5)), 0)
	if want := 1 / (1 + math.Exp(-2.5)); math.Abs(got[0]-want) > 1e-15 {
		t.Errorf("binary forest: %v, want %v", got[0], want)
	}
}

// linearTree is a linear tree over f0..f2 split on f0 at 0: the left leaf
// is 1 + 2*f1 - 0.5*f2, the right leaf 3 + 0.25*f0; their constant leaf
// values (used when a feature of the leaf's model is missing) -7 and 7.
const linearTree = "num_leaves=2\nnum_cat=0\nsplit_feature=0\nsplit_gain=1\nthreshold=0\ndecision_type=2\nleft_child=-1\nright_child=-2\n" +
	"leaf_value=-7 7\nleaf_weight=1 1\nleaf_count=1 1\ninternal_value=0\ninternal_weight=2\ninternal_count=2\nis_linear=1\n" +
	"leaf_const=1 3\nnum_features=2 1\nleaf_features=1 2  0  \nleaf_coeff=2 -0.5  0.25  \nshrinkage=1"

// TestLightGBMLinearTree checks Tree::Predict for is_linear=1 by hand,
// including a one-leaf linear tree and the constant fallback on NaN.
func TestLightGBMLinearTree(t *testing.T) {
	oneLeaf := "num_leaves=1\nnum_cat=0\nsplit_feature=\nsplit_gain=\nthreshold=\ndecision_type=\nleft_child=\nright_child=\nleaf_value=100\n" +
		"leaf_weight=1\nleaf_count=1\ninternal_value=\ninternal_weight=\ninternal_count=\nis_linear=1\nleaf_const=0.5\nnum_features=1\nleaf_features=2 \nleaf_coeff=10 \nshrinkage=1"
	text := lgbFile("regression", 1, 3, "", linearTree, oneLeaf)
	nan := math.NaN()
	for _, c := range []struct {
		x    []float64
		want float64
	}{
		{[]float64{-1, 2, 4}, 1 + 4 - 2 + 0.5 + 40},
		{[]float64{0, 0.5, -2}, 1 + 1 + 1 + 0.5 - 20},
		{[]float64{2, 9, 9}, 3 + 0.5 + 0.5 + 90},
		{[]float64{-1, nan, 4}, -7 + 0.5 + 40},         // left leaf's f1 missing: its leaf_value
		{[]float64{2, nan, 1}, 3 + 0.5 + 0.5 + 10},     // f1 is not in the right leaf's model
		{[]float64{nan, 1, 1}, 1 + 2 - 0.5 + 0.5 + 10}, // NaN reads as 0 for the split (type None): left
		{[]float64{2, 1, nan}, 3 + 0.5 + 100},          // the one-leaf tree's f2 missing
	} {
		if got := predictOne(t, text, c.x...); math.Abs(got[0]-c.want) > 1e-12 {
			t.Errorf("x=%v: %v, want %v", c.x, got[0], c.want)
		}
	}
}
