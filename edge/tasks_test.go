package edge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
)

// realModel loads one of the XGBoost models inference's tests trained with
// the real library (inference/testdata/xgboost/gen.py).
func realModel(t *testing.T, name string) (*inference.Model, LoadedModel) {
	t.Helper()
	data, err := os.ReadFile("../inference/testdata/xgboost/golden/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := inference.Load("", data)
	if err != nil {
		t.Fatal(err)
	}
	return m, LoadedModel{Model: modelfleet.ModelRef{Name: name, Version: "1"}, Format: m.Format(), Features: m.FeatureNames(), Scorer: m}
}

// TestScoreTasks serves a binary, a multiclass and a regression model
// through the router and checks each response against the model: a binary
// response as it always was, a multiclass one with the class and its
// probabilities, a regressor's value without a label.
func TestScoreTasks(t *testing.T) {
	r := NewRouter("site-1", inference.Vector, testLogger(t))
	defer r.Close()
	row := []float64{1.5, -0.3, 2.1, 0.4, -1.2}
	body, _ := json.Marshal(row)
	for _, c := range []struct{ name, task string }{
		{"binary", modelfleet.TaskBinary}, {"softprob", modelfleet.TaskMulticlass}, {"regression", modelfleet.TaskRegression},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, lm := realModel(t, c.name)
			if m.Task() != c.task {
				t.Fatalf("task %q, want %q", m.Task(), c.task)
			}
			r.Swap(lm)
			rec := do(r.Handler(), "POST", "/score/"+c.name, string(body))
			if rec.Code != 200 {
				t.Fatalf("score: %d %s", rec.Code, rec.Body)
			}
			var got map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			p, err := m.Predict(row)
			if err != nil {
				t.Fatal(err)
			}
			if got["prediction"] != p {
				t.Errorf("prediction = %v, want %v", got["prediction"], p)
			}
			_, hasProbs := got["probabilities"]
			switch c.task {
			case modelfleet.TaskBinary:
				if want := float64(labelOf(p)); got["label"] != want || hasProbs || len(got) != 6 {
					t.Errorf("binary response %s: want label %v and the fields it always had", rec.Body, want)
				}
			case modelfleet.TaskMulticlass:
				probs, _ := m.Probabilities(row, nil)
				want := make([]any, len(probs))
				for i, q := range probs {
					want[i] = q
				}
				if got["label"] != p || fmt.Sprint(got["probabilities"]) != fmt.Sprint(want) || len(probs) != 3 {
					t.Errorf("multiclass response %s: want label %v and probabilities %v", rec.Body, p, want)
				}
			case modelfleet.TaskRegression:
				if _, hasLabel := got["label"]; hasLabel || hasProbs {
					t.Errorf("regression response %s: want no label and no probabilities", rec.Body)
				}
			}
		})
	}
}

// writeScore must write exactly what encoding/json writes for scoreResponse,
// for every task.
func TestWriteScoreTasksMatchEncodingJSON(t *testing.T) {
	r := NewRouter("site-1", inference.Vector, nil)
	defer r.Close()
	for _, name := range []string{"softprob", "regression"} {
		_, lm := realModel(t, name)
		r.Swap(lm)
		a := r.lookup(name).version("1")
		for _, c := range []struct {
			p     float64
			probs []float64
		}{{2, []float64{0.1, 1e-7, 0.8999999}}, {0, []float64{1, 0, 0}}, {-3.25e-9, nil}, {41.5, nil}} {
			label := a.labelOf(c.p)
			want := scoreResponse{Model: name, Version: "1", Prediction: c.p, Site: "site-1"}
			if a.task == modelfleet.TaskMulticlass {
				if c.probs == nil {
					continue
				}
				want.Label, want.Probabilities = &label, c.probs
			}
			rec := httptest.NewRecorder()
			writeScore(rec, a, c.p, label, c.probs)
			var enc bytes.Buffer
			json.NewEncoder(&enc).Encode(want)
			if rec.Body.String() != enc.String() {
				t.Errorf("writeScore = %s, encoding/json = %s", rec.Body, enc.String())
			}
		}
	}
}

// TestFeedbackMulticlass: a multiclass version takes labels of its classes
// and counts them.
func TestFeedbackMulticlass(t *testing.T) {
	r := NewRouter("site-1", inference.Vector, testLogger(t))
	defer r.Close()
	m, lm := realModel(t, "softprob")
	r.Swap(lm)
	h := r.Handler()
	row := `[1.5, -0.3, 2.1, 0.4, -1.2]`
	rec := do(h, "POST", "/score/softprob", row, HeaderRequestID, "r1")
	p, _ := m.Predict([]float64{1.5, -0.3, 2.1, 0.4, -1.2})
	if rec.Code != 200 {
		t.Fatal(rec.Body)
	}
	if rec := do(h, "POST", "/feedback/softprob", `{"requestId":"r1","label":3}`); rec.Code != 400 || !strings.Contains(rec.Body.String(), "0 to 2") {
		t.Errorf("label 3 of 3 classes: %d %s, want 400", rec.Code, rec.Body)
	}
	fb := fmt.Sprintf(`{"requestId":"r1","label":%d}`, int(p))
	if rec := do(h, "POST", "/feedback/softprob", fb); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"correct":true`) {
		t.Errorf("feedback %s: %d %s", fb, rec.Code, rec.Body)
	}
	if math.IsNaN(p) {
		t.Fatal(p)
	}
}

// A regressor's feedback is its true value: the router sums the squared
// errors and the values per version, the agent reports them, and R² over
// them is what the control plane's minQuality reads.
func TestFeedbackRegression(t *testing.T) {
	data, err := os.ReadFile("../inference/testdata/xgboost/golden/regression.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := inference.Load("", data)
	if err != nil {
		t.Fatal(err)
	}
	load := func(format string, b []byte) (Scorer, error) { return inference.Load(format, b) }
	a, err := Open(t.TempDir(), Config{SiteID: "site-1", Loader: load, Vectorizer: inference.Vector, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	req := DeployRequest{Model: modelfleet.ModelRef{Name: "rul", Version: "1"}, Digest: digestOf(data), Format: modelfleet.FormatXGBoost,
		ArtifactURL: "https://example.invalid/rul/1", Features: m.FeatureNames()}
	mustDeploy(t, a, req, data)
	h := a.Handler()
	rows := [][]float64{{1.5, -0.3, 2.1, 0.4, -1.2}, {0.1, 0.2, 0.3, 0.4, 0.5}, {-1, 2, -0.5, 1, 0}}
	var want modelfleet.Residuals
	for i, row := range rows {
		body, _ := json.Marshal(row)
		id := fmt.Sprint("r", i)
		if rec := do(h, "POST", "/score/rul", string(body), HeaderRequestID, id); rec.Code != 200 {
			t.Fatalf("score: %d %s", rec.Code, rec.Body)
		}
		p, _ := m.Predict(row)
		truth := p + float64(i) - 1 // errors -1, 0, 1
		want = want.Add(modelfleet.Residuals{N: 1, SquaredError: (truth - p) * (truth - p), TargetSum: truth, TargetSquares: truth * truth})
		if rec := do(h, "POST", "/feedback/rul", fmt.Sprintf(`{"requestId":%q,"label":1}`, id)); rec.Code != 400 || !strings.Contains(rec.Body.String(), "regressor") {
			t.Errorf("a label for a regressor: %d %s, want 400", rec.Code, rec.Body)
		}
		fb := fmt.Sprintf(`{"requestId":%q,"value":%v}`, id, truth)
		if rec := do(h, "POST", "/feedback/rul", fb); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"error"`) {
			t.Fatalf("feedback %s: %d %s", fb, rec.Code, rec.Body)
		}
	}
	for _, bad := range []string{`{"requestId":"x","value":1e300}`, `{"requestId":"x"}`, `{"requestId":"x","value":"1"}`} {
		if rec := do(h, "POST", "/feedback/rul", bad); rec.Code != 400 {
			t.Errorf("%s: %d %s, want 400", bad, rec.Code, rec.Body)
		}
	}
	st := a.Stats("rul")
	if len(st) != 1 || st[0].Residuals == nil || st[0].Labelled != 0 {
		t.Fatalf("stats %+v: want residuals and no labels", st)
	}
	got := *st[0].Residuals
	if got.N != 3 || math.Abs(got.SquaredError-2) > 1e-9 || math.Abs(got.TargetSum-want.TargetSum) > 1e-9 || math.Abs(got.TargetSquares-want.TargetSquares) > 1e-6 {
		t.Errorf("residuals %+v, want %+v", got, want)
	}
	if _, ok := got.R2(); !ok {
		t.Errorf("R² undefined over %+v", got)
	}
}

// A multiclass model's classes each count in their own prediction bin, so
// a release's prediction shift sees a change in the class mix.
func TestMulticlassPredictionBins(t *testing.T) {
	a := &arm{task: modelfleet.TaskMulticlass}
	bins := append(slices.Clone(modelfleet.PredictionBins), math.Inf(1))
	for k := range 12 {
		want := min(k, len(bins)-1)
		got, _ := slices.BinarySearch(bins, a.shiftPoint(float64(k)))
		if got != want {
			t.Errorf("class %d counts in bin %d, want %d", k, got, want)
		}
	}
}
