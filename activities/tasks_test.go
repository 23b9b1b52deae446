package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
)

// blobRegistry serves one model record and blobs by digest.
type blobRegistry struct {
	m     modelfleet.Model
	blobs map[string][]byte
}

func (r *blobRegistry) Get(context.Context, string, string) (modelfleet.Model, error) {
	return r.m, nil
}
func (r *blobRegistry) Download(_ context.Context, _, digest string, w io.Writer) (int64, error) {
	b, ok := r.blobs[digest]
	if !ok {
		return 0, modelfleet.Errorf(modelfleet.ENOTFOUND, "no blob %s", digest)
	}
	n, err := w.Write(b)
	return int64(n), err
}

func (r *blobRegistry) add(b []byte) string {
	sum := sha256.Sum256(b)
	d := "sha256:" + hex.EncodeToString(sum[:])
	r.blobs[d] = b
	return d
}

// goldenCase is an XGBoost model the real library trained
// (inference/testdata/xgboost/gen.py) and its held-out rows as a validation
// CSV, leaving out rows with missing values (a CSV has no way to say so).
func goldenCase(t *testing.T, name string) (artifact, csv []byte, features []string) {
	t.Helper()
	dir := "../inference/testdata/xgboost/golden/"
	artifact, err := os.ReadFile(dir + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(dir + name + ".expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var exp struct {
		Features []string     `json:"features"`
		X        [][]*float64 `json:"X"`
		Y        []float64    `json:"y"`
	}
	if err := json.Unmarshal(raw, &exp); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(strings.Join(exp.Features, ",") + ",label\n")
rows:
	for i, row := range exp.X {
		var cells []string
		for _, v := range row {
			if v == nil {
				continue rows
			}
			cells = append(cells, fmt.Sprint(*v))
		}
		b.WriteString(strings.Join(cells, ",") + "," + fmt.Sprint(exp.Y[i]) + "\n")
	}
	return artifact, []byte(b.String()), exp.Features
}

// TestValidateTasks validates regressors and multiclass models the way a
// release does, with the metric and threshold of their model card.
func TestValidateTasks(t *testing.T) {
	for _, c := range []struct {
		model, metric string
		threshold     float64
		pass          bool
		note          string
	}{
		{"regression", modelfleet.MetricRMSE, 50, true, ""},
		{"regression", modelfleet.MetricRMSE, 0.01, false, "rmse"},
		{"regression", modelfleet.MetricMAE, 0.01, false, "is above the maximum 0.0100"},
		{"regression", modelfleet.MetricR2, 0.2, true, ""},
		{"regression", modelfleet.MetricR2, 0.9999, false, ""},
		{"softprob", modelfleet.MetricMacroF1, 0.3, true, ""},
		{"softprob", modelfleet.MetricAccuracy, 0.9999, false, ""},
		{"softprob", modelfleet.MetricLogLoss, 5, true, ""},
		{"softprob", modelfleet.MetricAUC, 0.5, false, `metric "auc" does not apply to a multiclass model`},
		{"regression", modelfleet.MetricAccuracy, 0.5, false, `metric "accuracy" does not apply to a regression model`},
	} {
		t.Run(c.model+"/"+c.metric, func(t *testing.T) {
			artifact, csv, features := goldenCase(t, c.model)
			reg := &blobRegistry{blobs: map[string][]byte{}}
			reg.m = modelfleet.Model{ModelRef: modelfleet.ModelRef{Name: c.model, Version: "1"}, Format: modelfleet.FormatXGBoost,
				Digest: reg.add(artifact), ArtifactURL: "http://registry.invalid/a", Features: features,
				Validation: &modelfleet.ValidationSpec{DataDigest: reg.add(csv), DataURL: "http://registry.invalid/d", Metric: c.metric, Threshold: c.threshold}}
			if err := reg.m.Validate(); err != nil {
				t.Fatal(err)
			}
			rep, err := (&Cloud{Registry: reg}).ValidateModel(context.Background(), reg.m.ModelRef)
			if err != nil {
				t.Fatal(err)
			}
			res := rep.Result
			if res.Passed != c.pass || !strings.Contains(res.Note, c.note) {
				t.Fatalf("result %+v: want passed=%v and a note containing %q", res, c.pass, c.note)
			}
			if c.note == "" && (res.Rows < 10 || res.Metric != c.metric) {
				t.Errorf("result %+v: want the metric over the held-out rows", res)
			}
		})
	}
}

// baselineRecorder keeps what validation hands the baseline store.
type baselineRecorder struct {
	task    string
	classes int
	preds   []float64
}

func (b *baselineRecorder) StoreBaseline(_ context.Context, _ modelfleet.ModelRef, ds *inference.Dataset, task string, classes int, preds []float64) (string, error) {
	if len(preds) != len(ds.X) {
		return "", fmt.Errorf("%d predictions for %d rows", len(preds), len(ds.X))
	}
	b.task, b.classes, b.preds = task, classes, preds
	return "sha256:" + strings.Repeat("0", 64), nil
}

// TestBaselineOfEachTask: a validated version's baseline gets the model's
// task, so the prediction is binned as the task needs (a class, a value).
func TestBaselineOfEachTask(t *testing.T) {
	for _, c := range []struct {
		model, metric, task string
		threshold           float64
		classes             int
	}{
		{"regression", modelfleet.MetricRMSE, modelfleet.TaskRegression, 50, 1},
		{"softprob", modelfleet.MetricAccuracy, modelfleet.TaskMulticlass, 0.3, 3},
		{"binary", modelfleet.MetricAUC, modelfleet.TaskBinary, 0.5, 2},
	} {
		t.Run(c.model, func(t *testing.T) {
			artifact, csv, features := goldenCase(t, c.model)
			reg := &blobRegistry{blobs: map[string][]byte{}}
			reg.m = modelfleet.Model{ModelRef: modelfleet.ModelRef{Name: c.model, Version: "1"}, Format: modelfleet.FormatXGBoost,
				Digest: reg.add(artifact), ArtifactURL: "http://registry.invalid/a", Features: features,
				Validation: &modelfleet.ValidationSpec{DataDigest: reg.add(csv), DataURL: "http://registry.invalid/d", Metric: c.metric, Threshold: c.threshold}}
			rec := &baselineRecorder{}
			rep, err := (&Cloud{Registry: reg, Baselines: rec}).ValidateModel(context.Background(), reg.m.ModelRef)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Result.Passed || rec.task != c.task || rec.classes != c.classes || len(rec.preds) == 0 {
				t.Fatalf("result %+v: baseline of task %q with %d classes and %d predictions, want %q and %d", rep.Result, rec.task, rec.classes, len(rec.preds), c.task, c.classes)
			}
			for _, p := range rec.preds {
				if c.task == modelfleet.TaskMulticlass && (p != float64(int(p)) || p < 0 || p >= 3) {
					t.Fatalf("a multiclass prediction %v is not a class", p)
				}
			}
		})
	}
}
