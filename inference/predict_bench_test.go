package inference

import (
	"os"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// BenchmarkPredict is one row through each format of the bearing example
// (go test -bench Predict ./inference; make bench-runtime compares the
// formats on larger trees).
func BenchmarkPredict(b *testing.B) {
	for _, f := range []struct{ name, file, format string }{
		{"lightgbm", "model.txt", modelfleet.FormatLightGBM},
		{"xgboost", "model.json", modelfleet.FormatXGBoost},
		{"onnx", "model.onnx", modelfleet.FormatONNX},
	} {
		data, err := os.ReadFile("../examples/bearing-failure/" + f.file)
		if err != nil {
			b.Fatal(err)
		}
		m, err := Load(f.format, data)
		if err != nil {
			b.Fatal(err)
		}
		x := make([]float64, m.NumFeatures())
		for i := range x {
			x[i] = float64(i) * 0.7
		}
		b.Run(f.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Predict(x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
