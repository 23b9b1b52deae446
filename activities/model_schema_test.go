package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference/mlflow"
)

// bearingPackage is the example model (LightGBM, model.txt) as an MLflow
// package whose signature declares the bearing features with speed_rpm a
// long, and an input example.
func bearingPackage(t *testing.T) []byte {
	t.Helper()
	model, err := os.ReadFile("../examples/bearing-failure/model.txt")
	if err != nil {
		t.Fatal(err)
	}
	var cols []map[string]any
	for _, f := range bearingFeatures {
		typ := modelfleet.FeatureDouble
		if f == "speed_rpm" {
			typ = modelfleet.FeatureLong
		}
		cols = append(cols, map[string]any{"type": typ, "name": f, "required": true})
	}
	sig, _ := json.Marshal(cols)
	quoted, _ := json.Marshal(string(sig))
	mlmodel := "artifact_path: model\nflavors:\n  lightgbm:\n    code: null\n    data: model.lgb\n    lgb_version: 4.1.0\n    model_class: lightgbm.basic.Booster\n" +
		"mlflow_version: 2.9.2\nsaved_input_example_info:\n  artifact_path: input_example.json\n  pandas_orient: split\n  type: dataframe\n" +
		"signature:\n  inputs: " + string(quoted) + "\n  outputs: null\n  params: null\n"
	example, _ := json.Marshal(map[string]any{"columns": bearingFeatures, "data": [][]float64{{4.1, 2.2, 71, 1480, 80, 20000}, {1, 0.5, 40, 1500, 60, 100}}})
	var buf bytes.Buffer
	if err := mlflow.Pack([]mlflow.File{{Name: "MLmodel", Data: []byte(mlmodel)}, {Name: "model.lgb", Data: model}, {Name: "input_example.json", Data: example}}, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestValidateSchema: validation (before any site is touched) fails a
// version whose artifact's own schema disagrees with its model card or
// with the workload it is released with, naming the first mismatch, and
// scores the package's input example.
func TestValidateSchema(t *testing.T) {
	f := newPlanFixture(t)
	for _, doc := range [][]byte{
		workloadDoc(t, "2", "load_pct", "load_ratio"),
		workloadDoc(t, "3", "speed_rpm", "speed_rpm, type: double"),
		workloadDoc(t, "4", "speed_rpm", "speed_rpm, type: integer"),
	} {
		if _, _, err := f.dir.RegisterWorkload(doc); err != nil {
			t.Fatal(err)
		}
	}
	onnxTensor := packGolden(t, "onnx_tensor")
	reordered := slices.Clone(bearingFeatures)
	reordered[2], reordered[3] = reordered[3], reordered[2]
	for _, c := range []struct {
		name     string
		artifact []byte
		format   string
		features []string
		workload string
		note     string // "" passes
	}{
		{"package and workload agree", bearingPackage(t), modelfleet.FormatMLflow, bearingFeatures, "bearing-failure-line:1", ""},
		{"workload declares the type", bearingPackage(t), modelfleet.FormatMLflow, bearingFeatures, "bearing-failure-line:4", ""},
		{"card without features", bearingPackage(t), modelfleet.FormatMLflow, nil, "bearing-failure-line:1", ""},
		{"feature missing", bearingPackage(t), modelfleet.FormatMLflow, bearingFeatures, "bearing-failure-line:2",
			`workload "bearing-failure-line:2" is incompatible with model "bearing-failure:7": the model needs "load_pct" that the workload does not produce`},
		{"type mismatch", bearingPackage(t), modelfleet.FormatMLflow, bearingFeatures, "bearing-failure-line:3",
			`feature "speed_rpm": the model takes long but the workload produces double`},
		{"card out of order", bearingPackage(t), modelfleet.FormatMLflow, reordered, "",
			`feature "speed_rpm" is out of order: at position 3, where the model takes "temperature_c"`},
		{"card extra", bearingPackage(t), modelfleet.FormatMLflow, append(slices.Clone(bearingFeatures[:5]), "oil_temp_c"), "",
			`feature "bearing_age_h" is missing`},
		{"unnamed: count only", onnxTensor, "", bearingFeatures, "",
			"model declares 6 features but the artifact takes 5 (the artifact does not name its features, f0, f1, …, so only their number is checked)"},
		{"unnamed against the workload", onnxTensor, "", nil, "bearing-failure-line:1",
			"the model's file takes 5 features and the workload produces 6 (the file does not name its features"},
		{"workload not registered", bearingPackage(t), modelfleet.FormatMLflow, bearingFeatures, "bearing-failure-line:9", "bearing-failure-line:9, which is not registered"},
		{"pickle", packGolden(t, "sklearn_pickle"), "", nil, "", "model does not load: mlflow package: MLmodel: the sklearn flavour's model model.pkl is a Python pickle"},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := &blobRegistry{blobs: map[string][]byte{}}
			reg.m = modelfleet.Model{ModelRef: modelfleet.ModelRef{Name: "bearing-failure", Version: "7"}, Format: c.format,
				Digest: reg.add(c.artifact), ArtifactURL: "http://registry.invalid/a", Features: c.features}
			if c.workload != "" {
				reg.m.Properties = map[string]string{modelfleet.PropWorkload: c.workload}
			}
			rep, err := (&Cloud{Registry: reg, Fleet: f.cloud.Fleet}).ValidateModel(context.Background(), reg.m.ModelRef)
			if err != nil {
				t.Fatal(err)
			}
			if c.note == "" {
				if !rep.Result.Passed {
					t.Fatalf("failed: %s", rep.Result.Note)
				}
				// The sites vectorise by the signature's names when the
				// card declares none.
				if !slices.Equal(rep.Model.Features, bearingFeatures) {
					t.Fatalf("report features %q, want the signature's", rep.Model.Features)
				}
				return
			}
			if rep.Result.Passed || !strings.Contains(rep.Result.Note, c.note) {
				t.Fatalf("result %+v: want a failure saying %q", rep.Result, c.note)
			}
		})
	}
	f.unchanged(t)
}

func packGolden(t *testing.T, name string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := mlflow.PackDir(filepath.Join("../inference/testdata/mlflow/golden", name), &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A workload declaring another unit for a feature than the model was
// trained on (the model card's units, kept as properties) fails
// validation, naming both; a unit only one side declares is not compared.
func TestValidateUnits(t *testing.T) {
	f := newPlanFixture(t)
	for _, c := range []struct {
		units map[string]string
		note  string
	}{
		{map[string]string{"temperature_c": "degC", "oil_temp_c": "degF"}, ""},
		{map[string]string{"temperature_c": "degF", "speed_rpm": "rpm"}, `feature "temperature_c": the workload produces degC, the model was trained on degF`},
	} {
		reg := &blobRegistry{blobs: map[string][]byte{}}
		reg.m = modelfleet.Model{ModelRef: modelfleet.ModelRef{Name: "bearing-failure", Version: "7"}, Format: modelfleet.FormatMLflow,
			Digest: reg.add(bearingPackage(t)), ArtifactURL: "http://registry.invalid/a", Features: bearingFeatures,
			Properties: map[string]string{modelfleet.PropWorkload: "bearing-failure-line:1"}}
		for f, u := range c.units {
			reg.m.Properties[modelfleet.PropUnitPrefix+f] = u
		}
		rep, err := (&Cloud{Registry: reg, Fleet: f.cloud.Fleet}).ValidateModel(context.Background(), reg.m.ModelRef)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Result.Passed != (c.note == "") || !strings.Contains(rep.Result.Note, c.note) {
			t.Errorf("units %v: %+v, want note %q", c.units, rep.Result, c.note)
		}
	}
}
