package inference

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// onnxCases are the models testdata/onnx/gen.py writes.
var onnxCases = []string{"rf_binary", "gbt_binary", "gbt_multiclass", "rf_regression", "gbt_regression",
	"hgb_missing", "logistic_multiclass", "linear_regression", "mlp_multiclass"}

// onnxExpected is what gen.py records beside each model: held-out rows (nil
// is a missing value) and scikit-learn's predictions for them (P(class 1)
// of a binary model, each class's probability, or the value).
type onnxExpected struct {
	SKLearn string       `json:"sklearn"`
	ONNX    string       `json:"onnx"`
	Task    string       `json:"task"`
	Classes int          `json:"classes"`
	Tol     float64      `json:"tol"`
	X       [][]*float64 `json:"X"`
	Predict [][]float64  `json:"predict"`
}

// TestONNXMatchesScikitLearn builds ONNX models of scikit-learn models with
// python3-onnx's helper and checks that the Go runtime predicts what
// scikit-learn predicts on held-out rows.
func TestONNXMatchesScikitLearn(t *testing.T) {
	if testing.Short() {
		t.Skip("trains models with python3-sklearn")
	}
	needPython(t, "python3-onnx python3-sklearn", "onnx", "numpy", "sklearn")
	dir := t.TempDir()
	if out, err := exec.Command(python, "testdata/onnx/gen.py", dir, "500").CombinedOutput(); err != nil {
		t.Fatalf("gen.py: %v\n%s", err, out)
	}
	checkONNXCases(t, dir)
}

// TestONNXGolden checks the committed models gen.py wrote (and
// scikit-learn's predictions then), for machines without python3-onnx.
func TestONNXGolden(t *testing.T) {
	checkONNXCases(t, "testdata/onnx/golden")
}

func checkONNXCases(t *testing.T, dir string) {
	for _, name := range onnxCases {
		t.Run(name, func(t *testing.T) {
			var exp onnxExpected
			if err := json.Unmarshal(readFile(t, filepath.Join(dir, name+".expected.json")), &exp); err != nil {
				t.Fatal(err)
			}
			data := readFile(t, filepath.Join(dir, name+".onnx"))
			m, err := Load("", data)
			if err != nil {
				t.Fatal(err)
			}
			if m.Format() != modelfleet.FormatONNX || m.Task() != exp.Task || m.NumClasses() != exp.Classes || m.NumFeatures() != 5 {
				t.Fatalf("format %q, task %q, %d classes, %d features; want onnx, %q, %d, 5",
					m.Format(), m.Task(), m.NumClasses(), m.NumFeatures(), exp.Task, exp.Classes)
			}
			var worst float64
			for i, row := range exp.X {
				x := make([]float64, len(row))
				for j, v := range row {
					x[j] = math.NaN()
					if v != nil {
						x[j] = *v
					}
				}
				got, err := m.Probabilities(x, nil)
				if err != nil {
					t.Fatalf("row %d: %v", i, err)
				}
				want := exp.Predict[i]
				if len(got) != len(want) {
					t.Fatalf("row %d: %d outputs, want %d", i, len(got), len(want))
				}
				for k := range want {
					// Relative above 1: a regressor's float32 output keeps
					// 7 significant digits.
					d := math.Abs(got[k]-want[k]) / math.Max(1, math.Abs(want[k]))
					worst = math.Max(worst, d)
					if d > exp.Tol {
						t.Fatalf("row %d output %d: %v, scikit-learn %v (difference %.3g > %g)", i, k, got[k], want[k], d, exp.Tol)
					}
				}
				p, err := m.Predict(x)
				if err != nil {
					t.Fatal(err)
				}
				if exp.Task == TaskMulticlass && p != float64(argmax(got)) || exp.Task != TaskMulticlass && p != got[0] {
					t.Fatalf("row %d: Predict = %v, Probabilities = %v", i, p, got)
				}
			}
			t.Logf("%d rows, max difference %.3g (scikit-learn %s, onnx %s)", len(exp.X), worst, exp.SKLearn, exp.ONNX)
		})
	}
}

// TestONNXRejects: models the runtime cannot serve fail to load with the
// reason, naming the first unsupported operator and its node.
func TestONNXRejects(t *testing.T) {
	golden := readFile(t, "testdata/onnx/golden/gbt_binary.onnx")
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", golden[:len(golden)/2], "onnx model: "},
		{"unsupported operator", replaceOnce(t, golden, "TreeEnsembleClassifier", "TreeEnsembleClassifieX"),
			`operator ai.onnx.ml.TreeEnsembleClassifieX (node "trees", #0) is not supported`},
		{"bad mode", replaceOnce(t, readFile(t, "testdata/onnx/golden/rf_regression.onnx"), "BRANCH_LEQ", "BRANCH_LEX"),
			`mode "BRANCH_LEX" is not one of`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := Load("", c.data)
			if err == nil || m != nil || modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load = %v, %v; want an invalid error containing %q", m, err, c.want)
			}
		})
	}
	if _, err := Load(modelfleet.FormatXGBoost, golden); err == nil || !strings.Contains(err.Error(), `says format "xgboost" but the file is a onnx model`) {
		t.Errorf("Load(xgboost, onnx file) = %v", err)
	}
}

func replaceOnce(t *testing.T, data []byte, old, new string) []byte {
	t.Helper()
	s := string(data)
	if len(old) != len(new) || !strings.Contains(s, old) {
		t.Fatalf("cannot replace %q with %q", old, new)
	}
	return []byte(strings.Replace(s, old, new, 1))
}

// TestONNXPredictAllocatesNothing: the router scores a row of an ONNX tree
// ensemble in a pooled session, which allocates nothing once warm.
func TestONNXPredictAllocatesNothing(t *testing.T) {
	m, err := Load(modelfleet.FormatONNX, readFile(t, "../examples/bearing-failure/model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	x := []float64{7.4, 3.1, 83.5, 1485, 96, 31000}
	if raceEnabled {
		t.Skip("the race detector drops pooled sessions")
	}
	m.Predict(x) // a session for the pool
	// A collection empties sync.Pools: a run then builds a session again.
	debug.SetGCPercent(-1)
	defer debug.SetGCPercent(100)
	if n := testing.AllocsPerRun(100, func() { m.Predict(x) }); n != 0 {
		t.Errorf("Predict allocates %v times per row", n)
	}
}

// TestONNXConcurrentPredictions: goroutines sharing a model (and so its
// pool of sessions) each get the prediction of their own row.
func TestONNXConcurrentPredictions(t *testing.T) {
	for _, name := range []string{"gbt_binary", "gbt_multiclass", "rf_regression"} {
		m, err := Load(modelfleet.FormatONNX, readFile(t, "testdata/onnx/golden/"+name+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(7, 7))
		rows := make([][]float64, 64)
		want := make([][]float64, len(rows))
		for i := range rows {
			rows[i] = make([]float64, m.NumFeatures())
			for j := range rows[i] {
				rows[i][j] = rng.NormFloat64() * 2
			}
			if want[i], err = m.Probabilities(rows[i], nil); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for g := range 4 {
			wg.Go(func() {
				for k := range 500 {
					i := (k*7 + g) % len(rows)
					got, err := m.Probabilities(rows[i], nil)
					if err == nil && !slices.Equal(got, want[i]) {
						err = fmt.Errorf("%s row %d: got %v, alone %v", name, i, got, want[i])
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}
