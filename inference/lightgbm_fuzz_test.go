package inference

import (
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// TestLightGBMRejects loads broken files: each fails with an invalid-input
// error naming what is wrong (and the tree), never a panic.
func TestLightGBMRejects(t *testing.T) {
	cat := "num_leaves=2\nnum_cat=1\nsplit_feature=0\nthreshold=0\ndecision_type=1\nleft_child=-1\nright_child=-2\nleaf_value=-1 1\ncat_boundaries=0 2\ncat_threshold=11 1\nis_linear=0"
	good := lgbFile("regression", 1, 3, "", stump("0.5", 2), cat, linearTree)
	edit := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("the model has no %q", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	if _, err := Load(modelfleet.FormatLightGBM, []byte(good)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, data, want string }{
		{"header only", "tree\nversion=v4\n", "no trees"},
		{"no trees", lgbFile("regression", 1, 1, ""), "0 trees"},
		{"duplicate header", edit("label_index=0", "num_class=1"), "appears twice"},
		{"num_class", edit("num_class=1", "num_class=0"), "num_class=0"},
		{"tree per iteration", edit("num_tree_per_iteration=1", "num_tree_per_iteration=2"), "num_tree_per_iteration=2"},
		{"max_feature_idx", edit("max_feature_idx=2", "max_feature_idx=-1"), "max_feature_idx=-1"},
		{"huge max_feature_idx", edit("max_feature_idx=2", "max_feature_idx=99999999999"), "max_feature_idx"},
		{"feature_infos", edit("feature_infos=[-9:9] [-9:9] [-9:9]", "feature_infos=[-9:9]"), "feature_infos has 1"},
		{"no objective", edit("objective=regression\n", ""), "custom objective"},
		{"custom", edit("objective=regression", "objective=custom"), "custom objective"},
		{"ranking", edit("objective=regression", "objective=lambdarank"), "ranking"},
		{"unknown objective", edit("objective=regression", "objective=survival"), "not supported"},
		{"sigmoid", edit("objective=regression", "objective=binary sigmoid:-1"), "sigmoid"},
		{"multiclass num_class", edit("objective=regression", "objective=multiclass num_class:3"), "num_class=1"},
		{"tree index", edit("Tree=1", "Tree=7"), `want "Tree=1"`},
		{"tree_sizes", edit("tree_sizes=", "tree_sizes=1 "), "tree 3: no num_leaves field"},
		{"huge tree_sizes", edit("tree_sizes=", "tree_sizes="+strings.Repeat("1 ", maxLGBTrees)), "more than 100000"},
		{"duplicate key", edit("is_linear=0\nshrinkage", "is_linear=0\nis_linear=0\nshrinkage"), "tree 0: line"},
		{"no num_cat", edit("num_cat=0\nsplit_feature=0\nsplit_gain", "split_feature=0\nsplit_gain"), "tree 0: no num_cat"},
		{"num_cat range", edit("num_cat=1", "num_cat=2"), "tree 1: num_cat=2"},
		{"no left_child", edit("left_child=-1\nright_child=-2\nleaf_value=-1 1\nleaf_weight", "right_child=-2\nleaf_value=-1 1\nleaf_weight"), "tree 0: no left_child"},
		{"negative feature", edit("split_feature=0\nsplit_gain", "split_feature=-1\nsplit_gain"), "tree 0: node 0 splits on feature -1"},
		{"nan threshold", edit("threshold=0.5", "threshold=nan"), "tree 0: threshold: value NaN"},
		{"inf leaf", edit("leaf_value=-1 1\nleaf_weight", "leaf_value=-1 inf\nleaf_weight"), "tree 0: leaf_value: value +Inf"},
		{"decision bits", edit("decision_type=2", "decision_type=18"), "tree 0: node 0: decision_type 18"},
		{"decision range", edit("decision_type=2", "decision_type=300"), "decision_type"},
		{"cat index", edit("threshold=0\ndecision_type=1", "threshold=1\ndecision_type=1"), "tree 1: node 0: categorical threshold 1"},
		{"cat fraction", edit("threshold=0\ndecision_type=1", "threshold=0.5\ndecision_type=1"), "categorical threshold 0.5"},
		{"cat bitset short", edit("cat_threshold=11 1", "cat_threshold=11"), "tree 1: cat_threshold has 1 values, want 2"},
		{"cat boundaries start", edit("cat_boundaries=0 2", "cat_boundaries=1 2"), "does not start at 0"},
		{"cat word", edit("cat_threshold=11 1", "cat_threshold=11 -1"), "cat_threshold"},
		{"linear const", edit("leaf_const=1 3", "leaf_const=1"), "tree 2: leaf_const has 1 values, want 2"},
		{"linear no const", edit("leaf_const=1 3\n", ""), "linear trees"},
		{"linear counts", edit("num_features=2 1", "num_features=2 -1"), "tree 2: leaf 1: num_features=-1"},
		{"linear too many", edit("num_features=2 1", "num_features=2 9"), "num_features=9"},
		{"linear features", edit("leaf_features=1 2  0", "leaf_features=1 2  5"), "tree 2: leaf_features[2]=5, beyond max_feature_idx=2"},
		{"linear coeff count", edit("leaf_coeff=2 -0.5  0.25", "leaf_coeff=2 -0.5"), "tree 2: leaf_coeff has 2 values, want 3"},
		{"linear coeff inf", edit("leaf_coeff=2 -0.5", "leaf_coeff=2 -inf"), "leaf_coeff: value -Inf"},
		{"is_linear", edit("is_linear=0\nshrinkage", "is_linear=2\nshrinkage"), "is_linear=2"},
		{"not a tree line", edit("internal_count=2\n", "internal_count=2\ngarbage\n"), "tree 0: line"},
		{"end", edit("end of trees", "end of tree"), `want "end of trees"`},
		{"cycle", edit("left_child=-1\nright_child=-2\nleaf_value=-1 1\nleaf_weight", "left_child=0\nright_child=-2\nleaf_value=-1 1\nleaf_weight"), "tree 0: node 0: child node 0"},
		{"unreachable leaf", edit("left_child=-1\nright_child=-2\nleaf_value=-1 1\nleaf_weight", "left_child=-1\nright_child=-1\nleaf_value=-1 1\nleaf_weight"), "reached twice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := Load(modelfleet.FormatLightGBM, []byte(c.data))
			if err == nil || m != nil {
				t.Fatalf("Load = %v, nil; want an error containing %q", m, c.want)
			}
			if modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q (code %s), want an invalid error containing %q", err, modelfleet.ErrorCode(err), c.want)
			}
		})
	}
}

// TestLightGBMTruncated loads every prefix of a model with numerical,
// categorical and linear trees: each is an invalid-input error naming the
// tree it stopped in, or (cut after "end of trees") the whole model.
func TestLightGBMTruncated(t *testing.T) {
	text := lgbFile("multiclass num_class:2", 2, 3, "", stump("0.5", 10), linearTree, leafOnly(1), stump("-1", 4))
	full, err := Load(modelfleet.FormatLightGBM, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	end := strings.Index(text, "end of trees") + len("end of trees")
	for n := range len(text) {
		m, err := Load(modelfleet.FormatLightGBM, []byte(text[:n]))
		if n >= end {
			if err != nil {
				t.Fatalf("cut at %d after the trees: %v", n, err)
			}
			continue
		}
		if err == nil || m != nil || modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Fatalf("cut at %d: %v, %v; want an invalid error", n, m, err)
		}
		if strings.Contains(text[:n], "Tree=0") && !namesTree.MatchString(err.Error()) {
			t.Fatalf("cut at %d: %q does not name the tree", n, err)
		}
	}
	if p, _ := full.Probabilities([]float64{1, 2, 3}, nil); len(p) != 2 {
		t.Fatalf("Probabilities = %v", p)
	}
}

// namesTree matches an error that says which tree a file broke in, or that
// it broke after the last one.
var namesTree = regexp.MustCompile(`tree \d+: |after \d+ trees: `)

func FuzzLoadLightGBM(f *testing.F) {
	cat := "num_leaves=2\nnum_cat=1\nsplit_feature=1\nthreshold=0\ndecision_type=9\nleft_child=-1\nright_child=-2\nleaf_value=-1 1\ncat_boundaries=0 2\ncat_threshold=11 1\nis_linear=0"
	for _, seed := range []string{
		string(readFile(f, "testdata/step.txt")),
		string(readModelFile(f, "boosters/small_tree/model.txt")),
		lgbFile("regression", 1, 3, "", stump("0.5", 6), cat, linearTree),
		lgbFile("multiclass num_class:2", 2, 2, "average_output\n", stump("0.5", 10), cat),
		lgbFile("multiclassova num_class:2 sigmoid:1", 2, 2, "", leafOnly(1), stump("-1", 4)),
		lgbFile("poisson", 1, 1, "", leafOnly(0.5)),
		lgbFile("binary sigmoid:1", 1, 1, "", stump("0", 8)),
		"tree\n", "",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Load(modelfleet.FormatLightGBM, data)
		if err != nil {
			if m != nil || modelfleet.ErrorCode(err) != modelfleet.EINVALID {
				t.Fatalf("Load = %v, %v: want nil and an invalid error", m, err)
			}
			return
		}
		for _, v := range []float64{0, -1, 1.5, 1e-36, 40, 1e9, math.NaN()} {
			x := make([]float64, m.NumFeatures())
			for i := range x {
				x[i] = v
			}
			// A loaded model predicts or, when its numbers overflow (a
			// sum of huge leaves, exp of a large score), says so.
			p, err := m.Probabilities(x, nil)
			if err != nil && !strings.Contains(err.Error(), "model returned") {
				t.Fatalf("Probabilities(%v...): %v", v, err)
			}
			want := 1
			if m.Task() == TaskMulticlass {
				want = m.NumClasses()
			}
			if err == nil && len(p) != want {
				t.Fatalf("Probabilities(%v...) = %v for a %s model with %d classes", v, p, m.Task(), m.NumClasses())
			}
		}
	})
}
