package trees_test

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet/examples/trees"
	"github.com/modelfleet/modelfleet/inference"
)

// rowsAway are rows whose values are float32 values at least 1e-4 from
// every threshold, so that XGBoost's float32 comparison cannot differ.
func rowsAway(rng *rand.Rand, e *trees.Ensemble, n int) [][]float64 {
	var X [][]float64
	for len(X) < n {
		x := []float64{float64(float32(10 * rng.Float64())), float64(float32(10 * rng.Float64())), float64(float32(10 * rng.Float64()))}
		near := false
		for _, t := range e.Trees {
			for i, f := range t.Feature {
				near = near || math.Abs(x[f]-t.Threshold[i]) < 1e-4
			}
		}
		if !near {
			X = append(X, x)
		}
	}
	return X
}

func files(t *testing.T, e *trees.Ensemble) map[string][]byte {
	t.Helper()
	var lgb, xgb bytes.Buffer
	if err := e.WriteLightGBM(&lgb); err != nil {
		t.Fatal(err)
	}
	if err := e.WriteXGBoostJSON(&xgb); err != nil {
		t.Fatal(err)
	}
	o, err := e.ONNX()
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{inference.FormatLightGBM: lgb.Bytes(), inference.FormatXGBoost: xgb.Bytes(), inference.FormatONNX: o}
}

// TestFormatsPredictTheEnsemble: each file, loaded by the edge runtime by
// its content alone, is the model it should be and predicts what the
// ensemble does, for both objectives.
func TestFormatsPredictTheEnsemble(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, objective := range []string{trees.Binary, trees.Regression} {
		e := trees.Random(rng, objective, 40)
		X := rowsAway(rng, e, 300)
		for format, data := range files(t, e) {
			m, err := inference.Load("", data)
			if err != nil {
				t.Fatalf("%s %s: %v", objective, format, err)
			}
			wantTask := inference.TaskBinary
			if objective == trees.Regression {
				wantTask = inference.TaskRegression
			}
			if m.Format() != format || m.Task() != wantTask {
				t.Fatalf("%s %s: loads as a %s %s model", objective, format, m.Format(), m.Task())
			}
			for i, x := range X {
				got, err := m.Predict(x)
				if err != nil {
					t.Fatal(err)
				}
				// Relative for the regressor's sums of 40 normal leaves:
				// XGBoost adds float32s, ONNX rounds its output to float32.
				want := e.Predict(x)
				if d := math.Abs(got - want); d > 1e-5*max(1, math.Abs(want)) {
					t.Fatalf("%s %s row %d: %v, want %v", objective, format, i, got, want)
				}
			}
		}
	}
}

func TestRejects(t *testing.T) {
	ok := func() *trees.Ensemble { return trees.Random(rand.New(rand.NewPCG(1, 2)), trees.Binary, 2) }
	for name, broken := range map[string]func(e *trees.Ensemble){
		"objective":       func(e *trees.Ensemble) { e.Objective = "multiclass" },
		"no trees":        func(e *trees.Ensemble) { e.Trees = nil },
		"short leaves":    func(e *trees.Ensemble) { e.Trees[1].Leaf = e.Trees[1].Leaf[:7] },
		"feature range":   func(e *trees.Ensemble) { e.Trees[0].Feature[3] = 3 },
		"shared child":    func(e *trees.Ensemble) { e.Trees[0].Right[0] = e.Trees[0].Left[0] },
		"leaf twice":      func(e *trees.Ensemble) { e.Trees[0].Right[6] = e.Trees[0].Left[6] },
		"NaN threshold":   func(e *trees.Ensemble) { e.Trees[0].Threshold[2] = math.NaN() },
		"infinite leaf":   func(e *trees.Ensemble) { e.Trees[1].Leaf[0] = math.Inf(1) },
		"child out range": func(e *trees.Ensemble) { e.Trees[0].Left[0] = 9 },
	} {
		e := ok()
		broken(e)
		if err := e.WriteLightGBM(new(bytes.Buffer)); err == nil {
			t.Errorf("%s: WriteLightGBM took it", name)
		}
		if err := e.WriteXGBoostJSON(new(bytes.Buffer)); err == nil {
			t.Errorf("%s: WriteXGBoostJSON took it", name)
		}
		if _, err := e.ONNX(); err == nil {
			t.Errorf("%s: ONNX took it", name)
		}
	}
	// One-class ONNX weights that are all positive would be read as
	// probabilities, not margins.
	e := ok()
	for i := range e.Trees {
		for j := range e.Trees[i].Leaf {
			e.Trees[i].Leaf[j] = math.Abs(e.Trees[i].Leaf[j])
		}
	}
	if _, err := e.ONNX(); err == nil || !strings.Contains(err.Error(), "negative leaf") {
		t.Errorf("a binary ensemble without a negative leaf: %v", err)
	}
}

const python = "/usr/bin/python3"

// TestLibrariesReadTheFiles: XGBoost itself loads the JSON file and
// predicts what the ensemble does, and ONNX's checker accepts the ONNX
// file (Debian's python3-xgboost and python3-onnx).
func TestLibrariesReadTheFiles(t *testing.T) {
	if out, err := exec.Command(python, "-c", "import xgboost, onnx, numpy").CombinedOutput(); err != nil {
		msg := "needs " + python + " with xgboost, onnx and numpy: apt-get install -y python3-xgboost python3-onnx (or make deps); " + strings.TrimSpace(string(out))
		if os.Getenv("MODELFLEET_REQUIRE_DEPS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	rng := rand.New(rand.NewPCG(4, 4))
	dir := t.TempDir()
	for _, objective := range []string{trees.Binary, trees.Regression} {
		e := trees.Random(rng, objective, 30)
		X := rowsAway(rng, e, 200)
		want := make([]float64, len(X))
		for i, x := range X {
			want[i] = e.Predict(x)
		}
		f := files(t, e)
		rows, _ := json.Marshal(map[string]any{"X": X, "want": want})
		for name, data := range map[string][]byte{"model.json": f[inference.FormatXGBoost], "model.onnx": f[inference.FormatONNX], "rows.json": rows} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		script := `
import json, sys
import numpy as np, onnx, xgboost as xgb
d = sys.argv[1]
rows = json.load(open(d + "/rows.json"))
X, want = np.array(rows["X"], dtype=np.float32), np.array(rows["want"])
b = xgb.Booster(model_file=d + "/model.json")
got = b.predict(xgb.DMatrix(X, feature_names=b.feature_names))
onnx.checker.check_model(onnx.load(d + "/model.onnx"), full_check=True)
print(float(np.max(np.abs(got - want) / np.maximum(1, np.abs(want)))))
`
		out, err := exec.Command(python, "-c", script, dir).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", objective, err, out)
		}
		lines := strings.Fields(string(out))
		var worst float64
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &worst); err != nil || worst > 1e-5 {
			t.Fatalf("%s: XGBoost's predictions differ from the ensemble's by %s (relative), want ≤ 1e-5", objective, out)
		}
		t.Logf("%s: XGBoost's predictions within %.2g (relative) of the ensemble's; onnx.checker accepts the ONNX file", objective, worst)
	}
}
