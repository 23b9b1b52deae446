package inference

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference/mlflow"
)

// mlflowCases are the packages testdata/mlflow/gen.py writes that load.
var mlflowCases = []string{"xgboost_json", "xgboost_ubj", "onnx_tensor", "sklearn_onnx"}

// mlflowExpected is a case's <name>.expected.json.
type mlflowExpected struct {
	Task      string            `json:"task"`
	Classes   int               `json:"classes"`
	Tol       float64           `json:"tol"`
	Libraries map[string]string `json:"libraries"`
	Features  []string          `json:"features"`
	X         [][]float64       `json:"X"`
	Predict   [][]float64       `json:"predict"`
}

// packDir packs an MLflow model directory as `model register` does.
func packDir(t testing.TB, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := mlflow.PackDir(dir, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestMLflowMatchesLibraries writes MLflow packages around models trained
// by the real XGBoost and scikit-learn (testdata/mlflow/gen.py), packs and
// loads them, and checks the predictions against the libraries' own on
// held-out rows, the signature as the feature schema, and the input
// example as a smoke test.
func TestMLflowMatchesLibraries(t *testing.T) {
	if testing.Short() {
		t.Skip("trains models with python3-xgboost and python3-sklearn")
	}
	needPython(t, "python3-xgboost python3-sklearn python3-onnx python3-yaml", "xgboost", "sklearn", "onnx", "yaml", "numpy")
	dir := t.TempDir()
	if out, err := exec.Command(python, "testdata/mlflow/gen.py", dir, "500").CombinedOutput(); err != nil {
		t.Fatalf("gen.py: %v\n%s", err, out)
	}
	checkMLflowCases(t, dir)
	checkPickleRefused(t, dir)
}

// TestMLflowGolden checks the committed packages (40 held-out rows), for
// machines without the Python libraries.
func TestMLflowGolden(t *testing.T) {
	checkMLflowCases(t, "testdata/mlflow/golden")
	checkPickleRefused(t, "testdata/mlflow/golden")
}

func checkMLflowCases(t *testing.T, dir string) {
	for _, name := range mlflowCases {
		t.Run(name, func(t *testing.T) {
			var exp mlflowExpected
			if err := json.Unmarshal(readFile(t, filepath.Join(dir, name+".expected.json")), &exp); err != nil {
				t.Fatal(err)
			}
			data := packDir(t, filepath.Join(dir, name))
			if f, _ := Detect(data); f != FormatMLflow {
				t.Fatalf("Detect = %q, want %q", f, FormatMLflow)
			}
			m, err := Load("", data)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Load(FormatMLflow, data); err != nil {
				t.Fatal(err)
			}
			if m.Format() != modelfleet.FormatMLflow || m.Task() != exp.Task || m.NumClasses() != exp.Classes || m.NumFeatures() != 5 {
				t.Fatalf("format %q, task %q, %d classes, %d features; want mlflow, %q, %d, 5", m.Format(), m.Task(), m.NumClasses(), m.NumFeatures(), exp.Task, exp.Classes)
			}
			// The signature is the schema: named columns give the names, a
			// tensor leaves them positional.
			wantNames := exp.Features
			if name == "onnx_tensor" {
				wantNames = []string{"f0", "f1", "f2", "f3", "f4"}
			}
			if got := m.FeatureNames(); !slices.Equal(got, wantNames) {
				t.Errorf("features %q, want %q", got, wantNames)
			}
			if name == "sklearn_onnx" && m.FeatureTypes()[3] != modelfleet.FeatureLong {
				t.Errorf("types %q: want speed_rpm long, as the signature says", m.FeatureTypes())
			}
			if len(m.InputExample()) < 2 {
				t.Errorf("input example %v: want its rows", m.InputExample())
			}
			if err := m.SmokeTest(); err != nil {
				t.Fatal(err)
			}
			var worst float64
			for i, x := range exp.X {
				got, err := m.Probabilities(x, nil)
				if err != nil {
					t.Fatalf("row %d: %v", i, err)
				}
				want := exp.Predict[i]
				if exp.Task == TaskBinary {
					want = want[:1]
				}
				if len(got) != len(want) {
					t.Fatalf("row %d: %d outputs, want %d", i, len(got), len(want))
				}
				for k := range want {
					d := math.Abs(got[k]-want[k]) / math.Max(1, math.Abs(want[k]))
					worst = math.Max(worst, d)
					if d > exp.Tol {
						t.Fatalf("row %d output %d: %v, library %v (difference %.3g > %g)", i, k, got[k], want[k], d, exp.Tol)
					}
				}
			}
			t.Logf("%d rows, max difference %.3g (%v)", len(exp.X), worst, exp.Libraries)
		})
	}
}

// checkPickleRefused: a package whose only model is a pickle fails to load
// saying why and how to convert, naming the file.
func checkPickleRefused(t *testing.T, dir string) {
	_, err := Load("", packDir(t, filepath.Join(dir, "sklearn_pickle")))
	for _, want := range []string{"model.pkl", "arbitrary code", "skl2onnx", "mlflow.onnx.log_model", `"cloudpickle"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("pickle package: error %v, want it to say %q", err, want)
		}
	}
	if modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("code %q, want invalid", modelfleet.ErrorCode(err))
	}
}

// goldenFiles reads a golden package's files, to build variants of it.
func goldenFiles(t testing.TB, name string) []mlflow.File {
	t.Helper()
	dir := filepath.Join("testdata/mlflow/golden", name)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []mlflow.File
	for _, e := range entries {
		files = append(files, mlflow.File{Name: e.Name(), Data: readFile(t, filepath.Join(dir, e.Name()))})
	}
	return files
}

// with returns files with name's content replaced (added if new; removed
// if data is nil).
func with(files []mlflow.File, name string, data []byte) []mlflow.File {
	out := slices.DeleteFunc(slices.Clone(files), func(f mlflow.File) bool { return f.Name == name })
	if data != nil {
		out = append(out, mlflow.File{Name: name, Data: data})
	}
	return out
}

func pack(t testing.TB, files []mlflow.File) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := mlflow.Pack(files, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestMLflowLightGBM: a LightGBM flavour (the bearing example's model
// file as model.lgb, its card's features as the signature) loads, and a
// signature that names the features in another order than the file does
// is refused naming the first difference.
func TestMLflowLightGBM(t *testing.T) {
	features := []string{"vibration_rms_mm_s", "vibration_peak_g", "temperature_c", "speed_rpm", "load_pct", "bearing_age_h"}
	mlmodel := func(names []string) []byte {
		var cols []map[string]any
		for _, n := range names {
			cols = append(cols, map[string]any{"type": "double", "name": n, "required": true})
		}
		sig, _ := json.Marshal(cols)
		q, _ := json.Marshal(string(sig))
		return []byte("artifact_path: model\nflavors:\n  lightgbm:\n    code: null\n    data: model.lgb\n    lgb_version: 4.1.0\n    model_class: lightgbm.basic.Booster\n" +
			"  python_function:\n    data: model.lgb\n    loader_module: mlflow.lightgbm\nmlflow_version: 2.9.2\nsignature:\n  inputs: " + string(q) + "\n  outputs: null\n  params: null\n")
	}
	model := readFile(t, "../examples/bearing-failure/model.txt")
	m, err := Load("", pack(t, []mlflow.File{{Name: "MLmodel", Data: mlmodel(features)}, {Name: "model.lgb", Data: model}}))
	if err != nil {
		t.Fatal(err)
	}
	if m.Format() != FormatMLflow || !slices.Equal(m.FeatureNames(), features) || m.Task() != TaskBinary {
		t.Fatalf("loaded %q %q %q", m.Format(), m.FeatureNames(), m.Task())
	}
	plain, err := Load(FormatLightGBM, model)
	if err != nil {
		t.Fatal(err)
	}
	row := []float64{4.1, 2.2, 71, 1480, 80, 20000}
	a, _ := m.Predict(row)
	b, _ := plain.Predict(row)
	if a != b {
		t.Fatalf("package predicts %v, the file alone %v", a, b)
	}
	// The example's file carries its names: a reordered signature fails.
	if !slices.Equal(plain.FeatureNames(), features) {
		t.Fatalf("model.txt names %q", plain.FeatureNames())
	}
	swapped := slices.Clone(features)
	swapped[0], swapped[1] = swapped[1], swapped[0]
	_, err = Load("", pack(t, []mlflow.File{{Name: "MLmodel", Data: mlmodel(swapped)}, {Name: "model.lgb", Data: model}}))
	if err == nil || !strings.Contains(err.Error(), `feature "vibration_peak_g" is out of order: at position 1, where the model takes "vibration_rms_mm_s"`) || !strings.Contains(err.Error(), "model.lgb") {
		t.Fatalf("reordered signature: %v", err)
	}
}

// TestMLflowRejects: packages the runtime cannot serve fail to load with
// the reason, naming the file.
func TestMLflowRejects(t *testing.T) {
	base := goldenFiles(t, "xgboost_json")
	mlmodel := string(readFile(t, "testdata/mlflow/golden/xgboost_json/MLmodel"))
	edit := func(old, new string) []byte {
		if !strings.Contains(mlmodel, old) {
			t.Fatalf("MLmodel has no %q", old)
		}
		return []byte(strings.Replace(mlmodel, old, new, 1))
	}
	sig := `'[{"type": "double", "name": "vibration_rms_mm_s", "required": true}, {"type":
    "double", "name": "vibration_peak_g", "required": true}, {"type": "double", "name":
    "temperature_c", "required": true}, {"type": "double", "name": "speed_rpm", "required":
    true}, {"type": "double", "name": "load_pct", "required": true}]'`
	if !strings.Contains(mlmodel, sig) {
		t.Fatalf("MLmodel's signature is not %s", sig)
	}
	// signature writes the inputs as one single-quoted YAML line.
	signature := func(cols ...string) []byte {
		var specs []string
		for _, c := range cols {
			typ, name, _ := strings.Cut(c, " ")
			specs = append(specs, `{"type": "`+typ+`", "name": "`+name+`", "required": true}`)
		}
		return edit(sig, "'["+strings.Join(specs, ", ")+"]'")
	}
	for _, c := range []struct {
		name  string
		files []mlflow.File
		want  string
	}{
		{"no flavours", with(base, "MLmodel", []byte("artifact_path: model\nflavors: {}\n")), "no flavors"},
		{"not yaml", with(base, "MLmodel", []byte("flavors: [\n")), "MLmodel"},
		{"unknown flavour", with(base, "MLmodel", []byte("flavors:\n  pytorch:\n    model_data: data\n")), "flavours pytorch: none the edge runtime loads"},
		{"model file missing", with(base, "model.json", nil), `"model.json" is not in the package`},
		{"model file corrupt", with(base, "model.json", []byte(`{"learner": {}}`)), "model.json (the xgboost flavour's model)"},
		{"binary xgboost", with(base, "MLmodel", edit("model_format: json", "model_format: deprecated")), `model_format "deprecated"`},
		{"string column", with(base, "MLmodel", signature("double vibration_rms_mm_s", "double vibration_peak_g", "double temperature_c", "double speed_rpm", "string load_pct")), `column "load_pct" has type "string"`},
		{"optional column", with(base, "MLmodel", edit(`"load_pct", "required": true`, `"load_pct", "required": false`)), `column "load_pct" is optional`},
		{"fewer columns", with(base, "MLmodel", signature("double vibration_rms_mm_s", "double vibration_peak_g", "double temperature_c", "double speed_rpm")), "the signature has 4 inputs but model.json takes 5 features"},
		{"renamed column", with(base, "MLmodel", signature("double vibration_rms_mm_s", "double vibration_peak_g", "double temperature_c", "double speed_rpm", "double load_ratio")), `feature "load_pct" is missing`},
		{"reordered columns", with(base, "MLmodel", signature("double vibration_rms_mm_s", "double vibration_peak_g", "double speed_rpm", "double temperature_c", "double load_pct")), `feature "speed_rpm" is out of order: at position 3, where the model takes "temperature_c"`},
		{"two tensors", with(base, "MLmodel", edit(sig, `'[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 5]}}, {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 5]}}]'`)), "2 tensors"},
		{"3-D tensor", with(base, "MLmodel", edit(sig, `'[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 5, 2]}}]'`)), "shape [-1 5 2]"},
		{"legacy binary xgb", with(with(base, "MLmodel", edit("model_format: json", "model_format: xgb")), "model.json", []byte("binf\x00\x00\x00\x3f")), "deprecated binary format"},
		{"lightgbm pickle", with(with(base, "MLmodel", []byte("flavors:\n  lightgbm:\n    data: model.pkl\n    model_class: lightgbm.sklearn.LGBMClassifier\n")), "model.pkl", []byte("\x80\x04\x95\x00")),
			"model.pkl (the lightgbm flavour's model): the file is a Python pickle"},
		{"custom pyfunc", with(base, "MLmodel", []byte("flavors:\n  python_function:\n    loader_module: my_model\n    data: weights\n")), `the python_function flavour (loader_module "my_model") runs Python code`},
		{"example missing", with(base, "input_example.json", nil), `saved_input_example_info names "input_example.json" is not in the package`},
		{"example column missing", with(base, "input_example.json", []byte(`{"columns": ["a"], "data": [[1]]}`)), `input example input_example.json: column "vibration_rms_mm_s" of the signature is not in the example`},
		{"example not a number", with(base, "input_example.json", []byte(`[{"vibration_rms_mm_s": 1, "vibration_peak_g": 1, "temperature_c": "hot", "speed_rpm": 1, "load_pct": 1}]`)), `"temperature_c": "hot" is not a number`},
		{"example empty", with(base, "input_example.json", []byte(`{"columns": [], "data": []}`)), "input example input_example.json: no rows"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load("", pack(t, c.files))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
			if modelfleet.ErrorCode(err) != modelfleet.EINVALID {
				t.Fatalf("code %q, want invalid", modelfleet.ErrorCode(err))
			}
		})
	}
}

// TestMLflowArchiveRejects: archives that are cut short, or name files
// outside the package, fail with the reason; every prefix of a package is
// an error, never a panic or a package with files missing.
func TestMLflowArchiveRejects(t *testing.T) {
	data := pack(t, goldenFiles(t, "xgboost_json"))
	for n := 0; n < len(data); n += 97 {
		if _, err := Load("", data[:n]); err == nil {
			t.Fatalf("the first %d of %d bytes loaded", n, len(data))
		}
	}
	if _, err := Load(FormatMLflow, data[:len(data)-1024]); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("archive without its end marker: %v", err)
	}
	_, err := Load(FormatMLflow, data[:3000])
	if err == nil || !strings.Contains(err.Error(), "truncated") || !strings.Contains(err.Error(), `"conda.yaml"`) && !strings.Contains(err.Error(), `"MLmodel"`) && !strings.Contains(err.Error(), `"input_example.json"`) {
		t.Fatalf("cut archive: %v, want it to name the file it cut", err)
	}
	hostile := func(hdrs ...tar.Header) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range hdrs {
			if err := tw.WriteHeader(&h); err != nil {
				t.Fatal(err)
			}
		}
		tw.Close()
		return buf.Bytes()
	}
	for _, c := range []struct {
		name string
		hdr  tar.Header
		want string
	}{
		{"dot-dot", tar.Header{Name: "../../etc/cron.d/x", Typeflag: tar.TypeReg, Mode: 0o644}, "leaves the package"},
		{"absolute", tar.Header{Name: "/etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, "is absolute"},
		{"symlink", tar.Header{Name: "model.json", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}, "is a link"},
		{"device", tar.Header{Name: "dev", Typeflag: tar.TypeChar, Mode: 0o644}, "not a regular file"},
		{"unclean", tar.Header{Name: "a/./MLmodel", Typeflag: tar.TypeReg, Mode: 0o644}, "not a clean relative path"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load("", hostile(tar.Header{Name: "MLmodel", Typeflag: tar.TypeReg, Mode: 0o644}, c.hdr))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
	if _, err := Load("", hostile(tar.Header{Name: "model.json", Typeflag: tar.TypeReg, Mode: 0o644})); err == nil || !strings.Contains(err.Error(), "no MLmodel") {
		t.Fatalf("archive without MLmodel: %v", err)
	}
	// The card may not call an MLflow package something else, nor the reverse.
	if _, err := Load(FormatXGBoost, data); err == nil || !strings.Contains(err.Error(), "mlflow") {
		t.Fatalf("package loaded as xgboost: %v", err)
	}
}
