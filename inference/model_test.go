package inference

import (
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// step.txt is a hand-written one-feature binary model: one tree whose raw
// output is -2 for x <= 0.5, -0.5 for x <= 1.5, 0.3 for x <= 2.5, else 2.
func loadStep(t testing.TB) *Model {
	t.Helper()
	m, err := Load(modelfleet.FormatLightGBM, readFile(t, "testdata/step.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func TestPredictStep(t *testing.T) {
	m := loadStep(t)
	if m.NumFeatures() != 1 || !slices.Equal(m.FeatureNames(), []string{"x"}) {
		t.Fatalf("NumFeatures %d, FeatureNames %q; want 1, [x]", m.NumFeatures(), m.FeatureNames())
	}
	for _, c := range []struct{ x, raw float64 }{
		{-10, -2}, {0.5, -2}, {0.51, -0.5}, {1.5, -0.5}, {2, 0.3}, {2.5, 0.3}, {3, 2}, {1e300, 2},
	} {
		got, err := m.Predict([]float64{c.x})
		if err != nil || math.Abs(got-sigmoid(c.raw)) > 1e-12 {
			t.Errorf("Predict(%v) = %v, %v; want %v", c.x, got, err, sigmoid(c.raw))
		}
	}
	for _, x := range [][]float64{nil, {1, 2}} {
		if _, err := m.Predict(x); modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), "want 1") {
			t.Errorf("Predict(%v) error = %v, want an invalid error about the length", x, err)
		}
	}
}

func TestLoadExample(t *testing.T) {
	m, err := Load(modelfleet.FormatLightGBM, readFile(t, "../examples/bearing-failure/model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if m.NumFeatures() != 6 || m.FeatureNames()[2] != "temperature_c" {
		t.Fatalf("features %q", m.FeatureNames())
	}
	healthy, err := m.Predict([]float64{1.6, 0.42, 55.2, 1485, 62, 5200})
	if err != nil {
		t.Fatal(err)
	}
	failing, err := m.Predict([]float64{7.4, 3.1, 83.5, 1485, 96, 31000})
	if err != nil {
		t.Fatal(err)
	}
	if !(0 < healthy && healthy < 0.2 && 0.5 < failing && failing < 1) {
		t.Errorf("healthy %v, failing %v", healthy, failing)
	}
}

func TestLoadErrors(t *testing.T) {
	step := string(readFile(t, "testdata/step.txt"))
	example := string(readFile(t, "../examples/bearing-failure/model.txt"))
	edit := func(old, new string) string {
		if !strings.Contains(step, old) {
			t.Fatalf("step.txt has no %q", old)
		}
		return strings.Replace(step, old, new, 1)
	}
	for _, c := range []struct{ name, format, data, want string }{
		{"format", "pmml", step, `model format "pmml" is not supported`},
		{"empty", "lightgbm", "", "unexpected end of file"},
		{"garbage", "lightgbm", "\x00\x01hello\n\n", "not a LightGBM text model"},
		{"truncated", "lightgbm", example[:len(example)/2], "tree "},
		{"no end", "lightgbm", edit("end of trees", "feature_importances:"), `want "end of trees"`},
		{"multiclass", "lightgbm", edit("num_class=1", "num_class=3"), "single-output"},
		{"names", "lightgbm", edit("feature_names=x", "feature_names=x y"), "feature_names has 2 names"},
		{"missing tree", "lightgbm", edit("tree_sizes=339", "tree_sizes=339 339"), "tree 1: no num_leaves field"},
		{"version", "lightgbm", edit("version=v3", "version=v9"), "version"},
		{"objective", "lightgbm", edit("binary sigmoid:1", "lambdarank"), "objective"},
		{"leaf count", "lightgbm", edit("leaf_value=-2 -0.5", "leaf_value=-0.5"), "leaf_value has 3 values"},
		{"huge num_leaves", "lightgbm", edit("num_leaves=4", "num_leaves=2000000000"), "num_leaves=2000000000"},
		{"nan leaf", "lightgbm", edit("leaf_value=-2", "leaf_value=NaN"), "not finite"},
		{"bad threshold", "lightgbm", edit("threshold=1.5", "threshold=x"), "threshold"},
		{"short split_feature", "lightgbm", edit("split_feature=0 0 0", "split_feature=0 0"), "split_feature has 2 values"},
		{"feature range", "lightgbm", edit("split_feature=0 0 0", "split_feature=0 0 7"), "beyond max_feature_idx"},
		{"cycle", "lightgbm", edit("left_child=1 -1 -3", "left_child=1 -1 0"), "reached twice"},
		{"child range", "lightgbm", edit("left_child=1 -1 -3", "left_child=1 -1 -9"), "out of range"},
		{"shared leaf", "lightgbm", edit("right_child=2 -2 -4", "right_child=2 -2 -3"), "reached twice"},
		{"categorical", "lightgbm", edit("decision_type=2 2 2", "decision_type=1 2 2"), "categorical"},
		{"missing type", "lightgbm", edit("decision_type=2 2 2", "decision_type=14 2 2"), "missing type"},
		{"linear", "lightgbm", edit("is_linear=0", "is_linear=1"), "linear trees"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := Load(c.format, []byte(c.data))
			if err == nil || m != nil {
				t.Fatalf("Load = %v, nil; want error", m)
			}
			if modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q (code %s), want an invalid error containing %q", err, modelfleet.ErrorCode(err), c.want)
			}
		})
	}
}
