package inference

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// readModelFile reads a file of testdata/lightgbm, unzipping a .gz one.
func readModelFile(t testing.TB, name string) []byte {
	t.Helper()
	data := readFile(t, "testdata/lightgbm/"+name)
	if !strings.HasSuffix(name, ".gz") {
		return data
	}
	z, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func loadLGB(t testing.TB, data []byte) (*Model, *lgbModel) {
	t.Helper()
	m, err := Load(modelfleet.FormatLightGBM, data)
	if err != nil {
		t.Fatal(err)
	}
	return m, m.rt.(*lgbModel)
}

// readTable reads whitespace-separated numbers, one row a line (np.savetxt,
// LightGBM's prediction files, the leaves repository's .tsv files); skip
// drops leading columns (a label).
func readTable(t testing.TB, name string, skip int) [][]float64 {
	t.Helper()
	var rows [][]float64
	for _, line := range strings.Split(strings.TrimSpace(string(readModelFile(t, name))), "\n") {
		var row []float64
		for _, f := range strings.Fields(line)[skip:] {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			row = append(row, v)
		}
		rows = append(rows, row)
	}
	return rows
}

// readLibSVM reads "label index:value ..." rows; absent features are 0.
func readLibSVM(t testing.TB, name string, features int) [][]float64 {
	t.Helper()
	var rows [][]float64
	for _, line := range strings.Split(strings.TrimSpace(string(readModelFile(t, name))), "\n") {
		row := make([]float64, features)
		for _, f := range strings.Fields(line)[1:] {
			i, v, _ := strings.Cut(f, ":")
			idx, err1 := strconv.Atoi(i)
			val, err2 := strconv.ParseFloat(v, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("%s: bad entry %q", name, f)
			}
			row[idx] = val
		}
		rows = append(rows, row)
	}
	return rows
}

// closeTo is the comparison of every golden test: within 1e-6, relative
// for values above 1 (the gamma and tweedie models predict thousands).
func closeTo(got, want float64) bool {
	return math.Abs(got-want) <= 1e-6*max(1, math.Abs(want))
}

// lgbGolden is one model file written by real LightGBM with the predictions
// LightGBM made for rows of data (see testdata/lightgbm/README.md).
type lgbGolden struct {
	name, model        string
	rows               func(t testing.TB, features int) [][]float64
	want               string // predictions file
	raw                bool   // the predictions are raw scores (average_output: averaged)
	task               string
	classes, numTrees  int
	categorical, nanOK bool
}

func tsv(name string, skip int) func(testing.TB, int) [][]float64 {
	return func(t testing.TB, _ int) [][]float64 { return readTable(t, name, skip) }
}

var lgbLeavesGolden = []lgbGolden{
	// A random forest written by LightGBM < 2.2.3, which did not apply the
	// objective's transform to an averaged output: what it predicted is the
	// average of the trees, our raw score. LightGBM >= 2.2.3 (#1906), and
	// so this reader, applies the sigmoid on top.
	{name: "rf_iris", model: "leaves/lg_rf_iris.model", rows: func(t testing.TB, n int) [][]float64 { return readLibSVM(t, "leaves/iris_test.libsvm", n) },
		want: "leaves/lg_rf_iris_true_predictions.txt", raw: true, task: TaskBinary, classes: 2, numTrees: 30},
	{name: "dart_breast_cancer", model: "leaves/lg_dart_breast_cancer.model", rows: tsv("leaves/breast_cancer_test.tsv", 0),
		want: "leaves/lg_dart_breast_cancer_true_predictions.txt", task: TaskBinary, classes: 2, numTrees: 10},
	{name: "multiclass", model: "leaves/lgmulticlass.model.gz", rows: tsv("leaves/multiclass_test.tsv", 1),
		want: "leaves/lgmulticlass_true_predictions.txt", task: TaskMulticlass, classes: 5, numTrees: 50},
	{name: "multiclass_raw", model: "leaves/lgmulticlass.model.gz", rows: tsv("leaves/multiclass_test.tsv", 1),
		want: "leaves/lgmulticlass_true_raw_predictions.txt", raw: true, task: TaskMulticlass, classes: 5, numTrees: 50},
	{name: "kddcup99_categorical", model: "leaves/lg_kddcup99.model.gz", rows: tsv("leaves/kddcup99_test.tsv", 0),
		want: "leaves/lg_kddcup99_true_predictions.txt", raw: true, task: TaskMulticlass, classes: 13, numTrees: 130, categorical: true},
	// From treelite's tests (see testdata/lightgbm/README.md).
	{name: "treelite_toy_categorical", model: "treelite/toy_categorical_model.txt", rows: func(t testing.TB, n int) [][]float64 { return readLibSVM(t, "treelite/toy_categorical.test", n) },
		want: "treelite/toy_categorical.test.pred", task: TaskRegression, classes: 1, numTrees: 0, categorical: true},
	{name: "poisson", model: "leaves/genlin_fmtp_poisson_Frequency.model.gz", rows: tsv("leaves/genlin_fmtp_poisson_Frequency_features.tsv", 0),
		want: "leaves/genlin_fmtp_poisson_Frequency_true_predictions.txt", task: TaskRegression, classes: 1, numTrees: 100, categorical: true},
	{name: "gamma", model: "leaves/genlin_fmtp_gamma_AvgClaimAmount.model.gz", rows: tsv("leaves/genlin_fmtp_gamma_AvgClaimAmount_features.tsv", 0),
		want: "leaves/genlin_fmtp_gamma_AvgClaimAmount_true_predictions.txt", task: TaskRegression, classes: 1, numTrees: 100, categorical: true},
	{name: "tweedie", model: "leaves/genlin_fmtp_tweedie_PurePremium.model.gz", rows: tsv("leaves/genlin_fmtp_tweedie_PurePremium_features.tsv", 0),
		want: "leaves/genlin_fmtp_tweedie_PurePremium_true_predictions.txt", task: TaskRegression, classes: 1, numTrees: 100, categorical: true},
}

// TestLightGBMGoldenLeaves checks the files the leaves repository keeps
// with LightGBM's own predictions (LightGBM 2.x and 3.x, file versions v2
// and v3): a random forest, dart, multiclass (probabilities and raw
// scores), categorical splits with missing types None, Zero and NaN, and
// the exp link of poisson, gamma and tweedie.
func TestLightGBMGoldenLeaves(t *testing.T) {
	for _, c := range lgbLeavesGolden {
		t.Run(c.name, func(t *testing.T) {
			m, lm := loadLGB(t, readModelFile(t, c.model))
			if m.Task() != c.task || m.NumClasses() != c.classes || (c.numTrees > 0 && len(lm.trees) != c.numTrees) {
				t.Fatalf("task %s, %d classes, %d trees; want %s, %d, %d", m.Task(), m.NumClasses(), len(lm.trees), c.task, c.classes, c.numTrees)
			}
			rows := c.rows(t, m.NumFeatures())
			want := readTable(t, c.want, 0)
			if len(rows) != len(want) || len(rows) < 30 {
				t.Fatalf("%d rows, %d predictions", len(rows), len(want))
			}
			checkRows(t, m, lm, rows, want, c.raw)
		})
	}
}

// checkRows compares the model's outputs (raw scores when raw) for each row
// with the recorded ones.
func checkRows(t *testing.T, m *Model, lm *lgbModel, rows, want [][]float64, raw bool) {
	t.Helper()
	worst := 0.0
	for i, x := range rows {
		if len(x) != m.NumFeatures() || len(want[i]) != lm.k {
			t.Fatalf("row %d: %d features, %d predictions", i, len(x), len(want[i]))
		}
		got := make([]float64, lm.k)
		if raw {
			lm.raw(x, got)
		} else {
			var err error
			if got, err = m.Probabilities(x, nil); err != nil {
				t.Fatal(err)
			}
		}
		for j := range got {
			if !closeTo(got[j], want[i][j]) {
				t.Fatalf("row %d output %d: got %v, LightGBM %v", i, j, got[j], want[i][j])
			}
			worst = max(worst, math.Abs(got[j]-want[i][j])/max(1, math.Abs(want[i][j])))
		}
		if m.Task() != TaskMulticlass && !raw {
			if p, err := m.Predict(x); err != nil || p != got[0] {
				t.Fatalf("row %d: Predict %v, %v; Probabilities %v", i, p, err, got[0])
			}
		}
	}
	t.Logf("%d rows, max difference %.3g", len(rows), worst)
}

// boostersCase is a test case of the boosters repository: rows (null is a
// missing value) and LightGBM 4.x's predict(raw_score=True) and predict().
type boostersCase struct {
	Data     [][]*float64 `json:"data"`
	Raw      []any        `json:"raw"`
	Proba    []any        `json:"proba"`
	Features int          `json:"num_features"`
}

func readBoosters(t *testing.T, name string) (rows [][]float64, raw, proba [][]float64) {
	t.Helper()
	var in, exp boostersCase
	if err := json.Unmarshal(readModelFile(t, "boosters/"+name+"/input.json"), &in); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(readModelFile(t, "boosters/"+name+"/expected.json"), &exp); err != nil {
		t.Fatal(err)
	}
	for _, r := range in.Data {
		row := make([]float64, len(r))
		for j, v := range r {
			row[j] = math.NaN()
			if v != nil {
				row[j] = *v
			}
		}
		rows = append(rows, row)
	}
	vectors := func(vs []any) [][]float64 {
		var out [][]float64
		for _, v := range vs {
			switch v := v.(type) {
			case float64:
				out = append(out, []float64{v})
			case []any:
				row := make([]float64, len(v))
				for j := range v {
					row[j] = v[j].(float64)
				}
				out = append(out, row)
			}
		}
		return out
	}
	return rows, vectors(exp.Raw), vectors(exp.Proba)
}

// TestLightGBMGoldenBoosters checks the files LightGBM 4.x wrote (file
// version v4) for the boosters repository's tests: binary, 3-class
// multiclass, regression, regression with missing values (missing type NaN,
// both default sides) and a linear tree.
func TestLightGBMGoldenBoosters(t *testing.T) {
	for _, c := range []struct {
		name, task string
		classes    int
		proba      bool
	}{
		{"binary_classification", TaskBinary, 2, true},
		{"multiclass", TaskMulticlass, 3, true},
		{"regression", TaskRegression, 1, false},
		{"regression_missing", TaskRegression, 1, false},
		{"small_tree", TaskRegression, 1, false},
		{"linear_tree", TaskRegression, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, lm := loadLGB(t, readModelFile(t, "boosters/"+c.name+"/model.txt"))
			if m.Task() != c.task || m.NumClasses() != c.classes {
				t.Fatalf("task %s, %d classes; want %s, %d", m.Task(), m.NumClasses(), c.task, c.classes)
			}
			rows, raw, proba := readBoosters(t, c.name)
			if len(rows) < 10 || len(raw) != len(rows) || (c.proba && len(proba) != len(rows)) {
				t.Fatalf("%d rows, %d raw, %d proba", len(rows), len(raw), len(proba))
			}
			checkRows(t, m, lm, rows, raw, true)
			if c.proba {
				checkRows(t, m, lm, rows, proba, false)
			}
			if c.name == "regression_missing" && !hasNaN(rows) {
				t.Fatal("no missing values in the rows")
			}
			if c.name == "linear_tree" && !lm.trees[1].linear {
				t.Fatal("tree 1 is not linear")
			}
		})
	}
}

func hasNaN(rows [][]float64) bool {
	for _, r := range rows {
		for _, v := range r {
			if math.IsNaN(v) {
				return true
			}
		}
	}
	return false
}

// TestLightGBMBearingAsLeaves checks that the bearing example predicts
// what leaves, which served LightGBM files before this reader, predicted
// for every row of its validation set (recorded by the comparison test
// that ran while leaves was a dependency; see testdata/lightgbm/README.md).
func TestLightGBMBearingAsLeaves(t *testing.T) {
	d, err := ReadCSV(bytes.NewReader(readFile(t, "../examples/bearing-failure/validation.csv")), nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(modelfleet.FormatLightGBM, readFile(t, "../examples/bearing-failure/model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := readTable(t, "bearing_leaves_predictions.txt", 0)
	if len(want) != len(d.X) || len(want) < 1000 {
		t.Fatalf("%d recorded predictions for %d rows", len(want), len(d.X))
	}
	for i, x := range d.X {
		got, err := m.Predict(x)
		if err != nil || math.Abs(got-want[i][0]) > 1e-12 {
			t.Fatalf("row %d: %v, %v; leaves predicted %v", i, got, err, want[i][0])
		}
	}
}

// TestLightGBMPredictAllocatesNothing: the router scores single-output
// models on its hot path, which allocates nothing per row.
func TestLightGBMPredictAllocatesNothing(t *testing.T) {
	m, err := Load(modelfleet.FormatLightGBM, readFile(t, "../examples/bearing-failure/model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	x := []float64{7.4, 3.1, 83.5, 1485, 96, 31000}
	if n := testing.AllocsPerRun(100, func() { m.Predict(x) }); n != 0 {
		t.Errorf("Predict allocates %v times per row", n)
	}
}
