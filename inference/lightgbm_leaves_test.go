package inference

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/dmitryikh/leaves"
)

// TestLightGBMMatchesLeaves compares this reader with leaves, which served
// LightGBM models before it, on every file leaves reads the same way: the
// bearing example on its whole validation set, the hand-written models and
// the leaves repository's own files. (leaves skips the objective's
// transform for random forests, which LightGBM >= 2.2.3 applies: that file
// is compared on raw scores by TestLightGBMGoldenLeaves instead.)
func TestLightGBMMatchesLeaves(t *testing.T) {
	bearing, err := ReadCSV(bytes.NewReader(readFile(t, "../examples/bearing-failure/validation.csv")), nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data []byte
		rows [][]float64
	}{
		{"bearing", readFile(t, "../examples/bearing-failure/model.txt"), bearing.X},
		{"step", readFile(t, "testdata/step.txt"), [][]float64{{-1}, {0.5}, {1}, {2}, {2.5}, {9}, {math.NaN()}}},
		{"categorical", []byte(modelText(categorical, constant)), [][]float64{{0, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 40}, {0, -1}, {0, math.NaN()}}},
	}
	for _, c := range lgbLeavesGolden {
		if c.name != "rf_iris" && c.name != "multiclass_raw" {
			cases = append(cases, struct {
				name string
				data []byte
				rows [][]float64
			}{c.name, readModelFile(t, c.model), c.rows(t, 0)})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ens, err := leaves.LGEnsembleFromReader(bufio.NewReader(bytes.NewReader(c.data)), true)
			if err != nil {
				t.Fatal(err)
			}
			m, _ := loadLGB(t, c.data)
			var record strings.Builder
			for i, x := range c.rows {
				got, err := m.Probabilities(x, nil)
				if err != nil {
					t.Fatal(err)
				}
				want := make([]float64, ens.NOutputGroups())
				if err := ens.Predict(x, 0, want); err != nil {
					t.Fatal(err)
				}
				for j := range want {
					if math.Abs(got[j]-want[j]) > 1e-12*max(1, math.Abs(want[j])) {
						t.Fatalf("row %d output %d: %v, leaves %v", i, j, got[j], want[j])
					}
				}
				record.WriteString(strconv.FormatFloat(want[0], 'g', -1, 64) + "\n")
			}
			// MODELFLEET_RECORD_LEAVES=1 writes leaves' predictions for the
			// bearing example, which TestLightGBMBearingAsLeaves keeps checking.
			if c.name == "bearing" && os.Getenv("MODELFLEET_RECORD_LEAVES") == "1" {
				if err := os.WriteFile("testdata/lightgbm/bearing_leaves_predictions.txt", []byte(record.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
