package inference

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// xgbCases are the models testdata/xgboost/gen.py trains.
var xgbCases = []string{"binary", "binary_unnamed", "regression", "poisson", "softprob", "softmax", "forest", "dart"}

// xgbExpected is what gen.py records beside each model: held-out rows (nil
// is a missing value) and what XGBoost's Booster.predict returned for them.
type xgbExpected struct {
	XGBoost   string       `json:"xgboost"`
	Objective string       `json:"objective"`
	NumClass  int          `json:"num_class"`
	Features  []string     `json:"features"`
	X         [][]*float64 `json:"X"`
	Predict   []any        `json:"predict"`
	// Y are the held-out labels, Metrics scikit-learn's metrics of Predict
	// against them.
	Y       []float64          `json:"y"`
	Metrics map[string]float64 `json:"metrics"`
}

// python is the interpreter with the Debian packages the tests need: the
// system one, not whatever python3 comes first on PATH (a pyenv or venv
// interpreter does not see Debian's dist-packages).
const python = "/usr/bin/python3"

// requireDeps reports whether a missing test dependency must fail the test
// rather than skip it (CI sets MODELFLEET_REQUIRE_DEPS=1).
func requireDeps() bool { return os.Getenv("MODELFLEET_REQUIRE_DEPS") == "1" }

// needPython skips (or, with MODELFLEET_REQUIRE_DEPS=1, fails) the test
// unless /usr/bin/python3 can import modules, naming the Debian packages
// to install.
func needPython(t *testing.T, pkgs string, modules ...string) {
	t.Helper()
	script := "import " + strings.Join(modules, ", ")
	out, err := exec.Command(python, "-c", script).CombinedOutput()
	if err == nil {
		return
	}
	msg := "needs " + python + " with " + strings.Join(modules, ", ") + ": apt-get install -y " + pkgs + " (or make deps); " + strings.TrimSpace(string(out))
	if requireDeps() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// TestXGBoostMatchesLibrary trains models with the real XGBoost and checks
// that the Go runtime predicts what the library predicts on held-out rows
// with missing values, in both the JSON and the UBJSON encoding.
func TestXGBoostMatchesLibrary(t *testing.T) {
	if testing.Short() {
		t.Skip("trains models with python3-xgboost")
	}
	needPython(t, "python3-xgboost python3-sklearn", "xgboost", "numpy", "sklearn")
	dir := t.TempDir()
	cmd := exec.Command(python, "testdata/xgboost/gen.py", dir, "500")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen.py: %v\n%s", err, out)
	}
	checkXGBoostCases(t, dir)
}

// TestXGBoostGolden checks the committed models gen.py wrote (and the
// library's predictions then), for machines without python3-xgboost.
func TestXGBoostGolden(t *testing.T) {
	checkXGBoostCases(t, "testdata/xgboost/golden")
}

func checkXGBoostCases(t *testing.T, dir string) {
	for _, name := range xgbCases {
		raw, err := os.ReadFile(filepath.Join(dir, name+".expected.json"))
		if os.IsNotExist(err) && strings.HasSuffix(dir, "golden") {
			continue // the golden set keeps a few cases only
		}
		if err != nil {
			t.Fatal(err)
		}
		var exp xgbExpected
		if err := json.Unmarshal(raw, &exp); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, ext := range []string{".json", ".ubj"} {
			file := filepath.Join(dir, name+ext)
			data, err := os.ReadFile(file)
			if os.IsNotExist(err) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Run(name+ext, func(t *testing.T) {
				format := modelfleet.FormatXGBoost
				if name == "binary" {
					format = "" // detected by content
				}
				m, err := Load(format, data)
				if err != nil {
					t.Fatal(err)
				}
				checkXGBoost(t, m, &exp)
			})
		}
	}
}

func checkXGBoost(t *testing.T, m *Model, exp *xgbExpected) {
	t.Helper()
	if got := m.FeatureNames(); !slices.Equal(got, exp.Features) {
		t.Errorf("FeatureNames = %q, want %q", got, exp.Features)
	}
	wantTask := map[string]string{"binary:logistic": TaskBinary, "multi:softprob": TaskMulticlass, "multi:softmax": TaskMulticlass}[exp.Objective]
	if wantTask == "" {
		wantTask = TaskRegression
	}
	wantClasses := map[string]int{TaskBinary: 2, TaskMulticlass: exp.NumClass, TaskRegression: 1}[wantTask]
	if m.Task() != wantTask || m.NumClasses() != wantClasses || m.Format() != modelfleet.FormatXGBoost {
		t.Errorf("Task, NumClasses, Format = %q, %d, %q; want %q, %d, %q", m.Task(), m.NumClasses(), m.Format(), wantTask, wantClasses, modelfleet.FormatXGBoost)
	}
	if len(exp.X) != len(exp.Predict) || len(exp.X) == 0 {
		t.Fatalf("%d rows, %d predictions", len(exp.X), len(exp.Predict))
	}
	var worst float64
	missing := 0
	d := &Dataset{Features: exp.Features, Y: exp.Y}
	for i, row := range exp.X {
		x := make([]float64, len(row))
		d.X = append(d.X, x)
		for j, v := range row {
			if v == nil {
				x[j] = math.NaN()
				missing++
			} else {
				x[j] = *v
			}
		}
		switch want := exp.Predict[i].(type) {
		case []any: // multi:softprob: one probability per class
			got, err := m.Probabilities(x, nil)
			if err != nil || len(got) != len(want) {
				t.Fatalf("row %d: Probabilities = %v, %v; want %v", i, got, err, want)
			}
			best := 0
			for k, w := range want {
				worst = max(worst, math.Abs(got[k]-w.(float64)))
				if w.(float64) > want[best].(float64) {
					best = k
				}
			}
			if p, err := m.Predict(x); err != nil || p != float64(best) {
				t.Errorf("row %d: Predict = %v, %v; want class %d", i, p, err, best)
			}
		case float64:
			got, err := m.Predict(x)
			if err != nil {
				t.Fatalf("row %d: %v", i, err)
			}
			worst = max(worst, math.Abs(got-want))
		}
	}
	if missing == 0 {
		t.Error("the held-out rows have no missing values")
	}
	if worst > 1e-6 {
		t.Errorf("max abs difference from XGBoost %s: %g, want <= 1e-6", exp.XGBoost, worst)
	}
	t.Logf("XGBoost %s %s: %d rows, max abs difference %.3g", exp.XGBoost, exp.Objective, len(exp.X), worst)
	if len(exp.Metrics) == 0 {
		t.Fatal("no metrics recorded")
	}
	for metric, want := range exp.Metrics {
		got, err := Evaluate(m, d, metric)
		if err != nil || math.Abs(got-want) > 1e-6*max(1, math.Abs(want)) {
			t.Errorf("Evaluate %s = %v, %v; scikit-learn says %v", metric, got, err, want)
		}
	}
}

// tinyXGB is a hand-written binary:logistic model over features a and b: one
// tree splitting on b < 1 (missing goes right) into leaves -1 and 2.
const tinyXGB = `{"learner": {"feature_names": ["a", "b"], "feature_types": [],
 "learner_model_param": {"base_score": "5E-1", "num_class": "0", "num_feature": "2", "num_target": "1"},
 "objective": {"name": "binary:logistic"},
 "gradient_booster": {"name": "gbtree", "model": {"tree_info": [0], "trees": [
  {"left_children": [1, -1, -1], "right_children": [2, -1, -1], "split_indices": [1, 0, 0],
   "split_conditions": [1, -1, 2], "default_left": [0, 0, 0], "split_type": [0, 0, 0],
   "tree_param": {"num_nodes": "3", "size_leaf_vector": "0"}}]}}},
 "version": [1, 7, 4]}`

func TestXGBoostTiny(t *testing.T) {
	m, err := Load(modelfleet.FormatXGBoost, []byte(tinyXGB))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ b, raw float64 }{{0.5, -1}, {0.9999999, -1}, {1, 2}, {7, 2}, {math.NaN(), 2}} {
		if got, err := m.Predict([]float64{0, c.b}); err != nil || math.Abs(got-sigmoid(c.raw)) > 1e-7 {
			t.Errorf("Predict(b=%v) = %v, %v; want %v", c.b, got, err, sigmoid(c.raw))
		}
	}
	if _, err := m.Predict([]float64{1}); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("Predict of a short row: %v, want an invalid error", err)
	}
	u, err := Load("", toUBJSON(t, []byte(tinyXGB)))
	if err != nil {
		t.Fatalf("the same model in UBJSON: %v", err)
	}
	for _, b := range []float64{0.5, 1, math.NaN()} {
		if p, q := mustPredict(t, m, []float64{0, b}), mustPredict(t, u, []float64{0, b}); p != q {
			t.Errorf("b=%v: JSON model predicts %v, UBJSON model %v", b, p, q)
		}
	}
}

func mustPredict(t *testing.T, m *Model, x []float64) float64 {
	t.Helper()
	p, err := m.Predict(x)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestXGBoostRejects checks that each broken or unsupported model fails to
// load with an error that names the problem.
func TestXGBoostRejects(t *testing.T) {
	golden := readFile(t, "testdata/xgboost/golden/binary.json")
	ubj := readFile(t, "testdata/xgboost/golden/binary.ubj")
	edit := func(old, new string) []byte {
		if !strings.Contains(tinyXGB, old) {
			t.Fatalf("tinyXGB has no %q", old)
		}
		return []byte(strings.Replace(tinyXGB, old, new, 1))
	}
	for _, c := range []struct {
		name   string
		format string
		data   []byte
		want   string
	}{
		{"truncated json", modelfleet.FormatXGBoost, golden[:len(golden)/2], "truncated"},
		{"truncated ubjson", modelfleet.FormatXGBoost, ubj[:len(ubj)/2], "truncated"},
		{"no learner", modelfleet.FormatXGBoost, []byte(`{"version": [1, 7, 4]}`), `no "learner"`},
		{"objective", "", edit("binary:logistic", "rank:pairwise"), `objective "rank:pairwise" is not supported`},
		{"gblinear", "", edit(`"name": "gbtree"`, `"name": "gblinear"`), "gblinear boosters are not supported"},
		{"categorical split", "", edit(`"split_type": [0, 0, 0]`, `"split_type": [1, 0, 0]`), "categorical splits are not supported"},
		{"categorical feature", "", edit(`"feature_types": []`, `"feature_types": ["q", "c"]`), `feature "b" is categorical`},
		{"cycle", "", edit(`"right_children": [2, -1, -1]`, `"right_children": [0, -1, -1]`), "out of range or reached twice"},
		{"shared child", "", edit(`"right_children": [2, -1, -1]`, `"right_children": [1, -1, -1]`), "out of range or reached twice"},
		{"feature range", "", edit(`"split_indices": [1, 0, 0]`, `"split_indices": [2, 0, 0]`), "want below num_feature=2"},
		{"short array", "", edit(`"split_conditions": [1, -1, 2]`, `"split_conditions": [1, -1]`), "split_conditions has 2 entries"},
		{"num_nodes", "", edit(`"num_nodes": "3"`, `"num_nodes": "4"`), "num_nodes"},
		{"tree_info", "", edit(`"tree_info": [0]`, `"tree_info": [1]`), "output group 1"},
		{"base_score", "", edit(`"base_score": "5E-1"`, `"base_score": "1"`), "must be in (0, 1)"},
		{"names", "", edit(`["a", "b"]`, `["a"]`), "feature_names has 1 names"},
		{"multi-target", "", edit(`"num_target": "1"`, `"num_target": "2"`), "multi-target"},
		{"vector leaf", "", edit(`"size_leaf_vector": "0"`, `"size_leaf_vector": "3"`), "vector leaves"},
		{"old version", "", edit(`[1, 7, 4]`, `[0, 90, 0]`), "XGBoost >= 1.0"},
		{"format mismatch", modelfleet.FormatLightGBM, []byte(tinyXGB), `says format "lightgbm" but the file is a xgboost model`},
		{"unknown", "", []byte("hello"), "not recognised"},
		{"pickle", modelfleet.FormatXGBoost, []byte("\x80\x04\x95\x10\x00\x00\x00"), "arbitrary code"},
		{"onnx without a graph", "", []byte("\x08\x07\x12\x08skl2onnx\x1a\x061.13.1"), "onnx model: the model has no graph"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := Load(c.format, c.data)
			if err == nil || m != nil || modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load = %v, %v; want an invalid error containing %q", m, err, c.want)
			}
		})
	}
}

func TestDetect(t *testing.T) {
	for _, c := range []struct {
		file   string
		format string
		ubj    bool
	}{
		{"testdata/step.txt", modelfleet.FormatLightGBM, false},
		{"testdata/xgboost/golden/binary.json", modelfleet.FormatXGBoost, false},
		{"testdata/xgboost/golden/binary.ubj", modelfleet.FormatXGBoost, true},
		{"testdata/xgboost/golden/binary.expected.json", "", false},
	} {
		if f, ubj := Detect(readFile(t, c.file)); f != c.format || ubj != c.ubj {
			t.Errorf("Detect(%s) = %q, %v; want %q, %v", c.file, f, ubj, c.format, c.ubj)
		}
	}
}

func TestUBJSON(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"{U\x01aU\x05}", `{"a":5}`},
		{"[i\xffI\x01\x00l\x00\x00\x00\x02TFZ]", `[-1,256,2,true,false,null]`},
		{"[$d#U\x02\x3f\x80\x00\x00\xbf\x00\x00\x00", `[1,-0.5]`},
		{"{#U\x01U\x01kSU\x02hi", `{"k":"hi"}`},
		{"[N[]N]", `[[]]`},
		{"[$U#U\x03\x01\x02\x03", `[1,2,3]`},
		{"HU\x041e-3", `1e-3`},
	} {
		got, err := ubjsonToJSON([]byte(c.in))
		if err != nil || string(got) != c.want {
			t.Errorf("ubjsonToJSON(%q) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"[$Z#L\x7f\xff\xff\xff\xff\xff\xff\xff", "larger than the rest"},
		{"[$d#U\x02\x7f\xc0\x00\x00\x00\x00\x00\x00", "not finite"},
		{"[U\x01", "truncated"},
		{strings.Repeat("[", 100), "deeper"},
		{"SU\x05ab", "larger than the rest of the file (truncated?)"},
		{"x", "unknown marker"},
		{"U\x01U\x02", "after the document"},
		{"HU\x02\"a", "not a number"},
	} {
		if got, err := ubjsonToJSON([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ubjsonToJSON(%q) = %s, %v; want an error containing %q", c.in, got, err, c.want)
		}
	}
}

// TestONNXTestdataAndPickles: each ONNX model of ONNX's own backend test
// data (Debian libonnx-testdata) is detected as ONNX and either loads or
// fails with the reason (most use operators the runtime does not have, or
// are not tabular models); a pickled and a joblib-dumped scikit-learn model
// fail to load with the reason.
func TestONNXTestdataAndPickles(t *testing.T) {
	if testing.Short() {
		t.Skip("reads libonnx-testdata and runs python3")
	}
	files, _ := filepath.Glob("/usr/share/libonnx-testdata/data/*/*/model.onnx")
	if len(files) == 0 {
		msg := "needs ONNX's backend test data: apt-get install -y libonnx-testdata (or make deps)"
		if requireDeps() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	loaded := 0
	for _, f := range files {
		data := readFile(t, f)
		if got, _ := Detect(data); got != modelfleet.FormatONNX {
			t.Errorf("Detect(%s) = %q, want onnx", f, got)
		}
		m, err := Load("", data)
		switch {
		case err == nil:
			loaded++
			if m.Format() != modelfleet.FormatONNX {
				t.Errorf("Load(%s).Format() = %q", f, m.Format())
			}
		case modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), "onnx model: "):
			t.Errorf("Load(%s) = %v, want an invalid error about the ONNX model", f, err)
		}
	}
	t.Logf("%d ONNX files: %d load as models, the others fail with the reason", len(files), loaded)
	needPython(t, "python3-sklearn", "sklearn", "joblib")
	script := `import io, joblib, pickle, sys
from sklearn.linear_model import LogisticRegression
m = LogisticRegression().fit([[0], [1]], [0, 1])
b = io.BytesIO(); joblib.dump(m, b)
sys.stdout.buffer.write(pickle.dumps(m) if sys.argv[1] == "pickle" else b.getvalue())`
	for _, kind := range []string{"pickle", "joblib"} {
		out, err := exec.Command(python, "-c", script, kind).Output()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Load(modelfleet.FormatXGBoost, out); err == nil || !strings.Contains(err.Error(), "arbitrary code") {
			t.Errorf("Load(%s) = %v, want the pickle refusal", kind, err)
		}
	}
}
