package inference

import (
	"bytes"
	"testing"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference/mlflow"
)

// FuzzLoadMLflow: a package with any MLmodel and input example beside a
// real model file loads to a model whose example scores, or fails with an
// invalid error; never a panic.
func FuzzLoadMLflow(f *testing.F) {
	files := goldenFiles(f, "xgboost_json")
	mlmodel := readFile(f, "testdata/mlflow/golden/xgboost_json/MLmodel")
	example := readFile(f, "testdata/mlflow/golden/xgboost_json/input_example.json")
	f.Add(mlmodel, example)
	f.Add(bytes.Replace(mlmodel, []byte("xgboost:"), []byte("sklearn:"), 1), example)
	f.Add([]byte("flavors:\n  xgboost: {data: model.json}\n"), []byte("[]"))
	f.Fuzz(func(t *testing.T, mlmodel, example []byte) {
		var buf bytes.Buffer
		if err := mlflow.Pack(with(with(files, "MLmodel", mlmodel), "input_example.json", example), &buf); err != nil {
			t.Fatal(err)
		}
		m, err := Load("", buf.Bytes())
		if err != nil {
			if m != nil || modelfleet.ErrorCode(err) != modelfleet.EINVALID {
				t.Fatalf("Load = %v, %v: want nil and an invalid error", m, err)
			}
			return
		}
		for _, row := range m.InputExample() {
			if len(row) != m.NumFeatures() {
				t.Fatalf("example row of %d values for %d features", len(row), m.NumFeatures())
			}
		}
		if err := m.SmokeTest(); err != nil {
			t.Fatalf("a loaded package's example does not score: %v", err)
		}
	})
}
