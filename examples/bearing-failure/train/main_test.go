package main

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
)

// TestModelFileMatchesEnsemble proves the LightGBM file format: the written
// model, loaded by the edge runtime, predicts what the trainer's in-memory
// ensemble predicts.
func TestModelFileMatchesEnsemble(t *testing.T) {
	X, y := generate(rand.New(rand.NewPCG(seed, 0)), trainRows+validRows)
	ens := train(X[:trainRows], y[:trainRows], cfg)
	var buf bytes.Buffer
	if err := ens.writeLightGBM(&buf); err != nil {
		t.Fatal(err)
	}
	m, err := inference.Load(modelfleet.FormatLightGBM, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got := m.FeatureNames(); !slices.Equal(got, features) {
		t.Fatalf("feature names %q, want %q", got, features)
	}
	for i, x := range X[trainRows:] {
		got, err := m.Predict(x)
		if err != nil {
			t.Fatal(err)
		}
		if want := ens.predict(x); math.Abs(got-want) > 1e-9 {
			t.Fatalf("row %d: loaded model predicts %v, trainer %v", i, got, want)
		}
	}
}

// TestCommittedExample checks the files the quickstart registers: the model
// card matches the model, the model clears its validation threshold with a
// margin, and the sample requests score as their names say.
func TestCommittedExample(t *testing.T) {
	dir := ".."
	var card struct {
		Format     string
		Features   []string
		Validation struct {
			Data      string
			Metric    string
			Threshold float64
		}
	}
	if err := yaml.Unmarshal(read(t, dir, "model.yaml"), &card); err != nil {
		t.Fatal(err)
	}
	m, err := inference.Load(card.Format, read(t, dir, "model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(card.Features, m.FeatureNames()) {
		t.Fatalf("model.yaml features %q, model.txt %q", card.Features, m.FeatureNames())
	}
	d, err := inference.ReadCSV(bytes.NewReader(read(t, dir, card.Validation.Data)), card.Features)
	if err != nil {
		t.Fatal(err)
	}
	auc, err := inference.Evaluate(m, d, card.Validation.Metric)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("validation %s %.4f on %d rows", card.Validation.Metric, auc, len(d.Y))
	if auc <= 0.85 || auc < card.Validation.Threshold+0.02 {
		t.Errorf("validation auc %.4f: want > 0.85 and comfortably above the threshold %v", auc, card.Validation.Threshold)
	}
	for name, failing := range map[string]bool{"sample.json": false, "sample-failing.json": true} {
		x, err := inference.Vector(card.Features, read(t, dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p, err := m.Predict(x); err != nil || (p >= 0.5) != failing {
			t.Errorf("%s: p = %v, %v; want failing = %v", name, p, err, failing)
		}
	}
}

func read(t *testing.T, dir, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestJobContract is the retraining job: labelled CSVs in, model.txt and
// metrics.json out; unusable data fails the run with a message.
func TestJobContract(t *testing.T) {
	dir := t.TempDir()
	if err := genData(dir, 3, 1, 1000); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := trainJob(filepath.Join(dir, "train"), out); err != nil {
		t.Fatal(err)
	}
	m, err := inference.Load(modelfleet.FormatLightGBM, read(t, out, "model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.FeatureNames(), features) {
		t.Errorf("features %q", m.FeatureNames())
	}
	var metrics jobMetrics
	if err := json.Unmarshal(read(t, out, "metrics.json"), &metrics); err != nil {
		t.Fatal(err)
	}
	if metrics.Rows != 800 || metrics.Files != 1 || metrics.Trees != cfg.Trees || metrics.TrainAUC <= 0.5 {
		t.Errorf("metrics = %+v", metrics)
	}
	if _, err := inference.ReadCSV(bytes.NewReader(read(t, dir, "holdout.csv")), features); err != nil {
		t.Errorf("holdout.csv: %v", err)
	}

	empty := t.TempDir()
	if err := trainJob(empty, out); err == nil || !strings.Contains(err.Error(), "no .csv files") {
		t.Errorf("empty folder: %v", err)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "a.csv"), []byte("speed_rpm,label\n1,0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := trainJob(bad, out); err == nil || !strings.Contains(err.Error(), "a.csv") {
		t.Errorf("bad file: %v", err)
	}
}

// TestOtherFormats checks model.json and model.onnx: they are what the
// trainer writes now (so they cannot drift from model.txt), their cards
// name their format, they predict what model.txt predicts on every
// validation row, and they clear their cards' thresholds.
func TestOtherFormats(t *testing.T) {
	dir := ".."
	X, y := generate(rand.New(rand.NewPCG(seed, 0)), trainRows+validRows)
	other, err := train(X[:trainRows], y[:trainRows], cfg).otherFormats()
	if err != nil {
		t.Fatal(err)
	}
	lgb, err := inference.Load(modelfleet.FormatLightGBM, read(t, dir, "model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for format, file := range map[string]string{modelfleet.FormatXGBoost: "model.json", modelfleet.FormatONNX: "model.onnx"} {
		data := read(t, dir, file)
		if !bytes.Equal(data, other[format]) {
			t.Errorf("%s differs from what the trainer writes: run go run ./examples/bearing-failure/train -out examples/bearing-failure", file)
		}
		var card struct {
			Format     string
			Features   []string
			Validation struct {
				Data      string
				Metric    string
				Threshold float64
			}
		}
		if err := yaml.Unmarshal(read(t, dir, "model-"+format+".yaml"), &card); err != nil {
			t.Fatal(err)
		}
		if card.Format != format || !slices.Equal(card.Features, features) {
			t.Fatalf("model-%s.yaml: format %q, features %q", format, card.Format, card.Features)
		}
		m, err := inference.Load(card.Format, data)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		d, err := inference.ReadCSV(bytes.NewReader(read(t, dir, card.Validation.Data)), card.Features)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i, x := range d.X {
			got, err1 := m.Predict(x)
			want, err2 := lgb.Predict(x)
			if err1 != nil || err2 != nil {
				t.Fatalf("row %d: %v, %v", i, err1, err2)
			}
			worst = max(worst, math.Abs(got-want))
		}
		// XGBoost sums float32 leaves; ONNX rounds its output to float32.
		if worst > 1e-6 {
			t.Errorf("%s: predictions differ from model.txt's by up to %.3g, want ≤ 1e-6", file, worst)
		}
		auc, err := inference.Evaluate(m, d, card.Validation.Metric)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: largest difference from model.txt %.2g; validation %s %.4f", file, worst, card.Validation.Metric, auc)
		if auc < card.Validation.Threshold+0.02 {
			t.Errorf("%s: validation %s %.4f, want comfortably above the threshold %v", file, card.Validation.Metric, auc, card.Validation.Threshold)
		}
	}
}
