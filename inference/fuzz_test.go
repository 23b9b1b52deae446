package inference

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// modelText wraps tree blocks (without their "Tree=i" line) in a LightGBM
// header over features a and b.
func modelText(trees ...string) string {
	var body strings.Builder
	sizes := make([]string, len(trees))
	for i, t := range trees {
		block := fmt.Sprintf("Tree=%d\n%s\n\n", i, t)
		sizes[i] = fmt.Sprint(len(block))
		body.WriteString(block)
	}
	return "tree\nversion=v3\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=1\n" +
		"objective=binary sigmoid:1\nfeature_names=a b\nfeature_infos=[0:9] [0:9]\ntree_sizes=" +
		strings.Join(sizes, " ") + "\n\n" + body.String() + "end of trees\n"
}

// categorical sends b in {1, 3} left (raw 1) and everything else right (-1).
const categorical = "num_leaves=2\nnum_cat=1\nsplit_feature=1\nthreshold=0\ndecision_type=1\n" +
	"left_child=-1\nright_child=-2\nleaf_value=1 -1\ncat_boundaries=0 1\ncat_threshold=10\n"

const constant = "num_leaves=1\nnum_cat=0\nsplit_feature=\nthreshold=\nleaf_value=0.25\n"

func TestPredictCategorical(t *testing.T) {
	m, err := Load(modelfleet.FormatLightGBM, []byte(modelText(categorical, constant)))
	if err != nil {
		t.Fatal(err)
	}
	for b, raw := range map[float64]float64{0: -1, 1: 1, 2: -1, 3: 1, 40: -1} {
		got, err := m.Predict([]float64{7, b})
		if want := sigmoid(raw + 0.25); err != nil || math.Abs(got-want) > 1e-12 {
			t.Errorf("Predict(b=%v) = %v, %v; want %v", b, got, err, want)
		}
	}
	bad := strings.Replace(categorical, "cat_boundaries=0 1", "cat_boundaries=0 5", 1)
	if _, err := Load(modelfleet.FormatLightGBM, []byte(modelText(bad))); err == nil || !strings.Contains(err.Error(), "cat_boundaries") {
		t.Errorf("Load with bad cat_boundaries: %v", err)
	}
}

func FuzzLoad(f *testing.F) {
	// Small seeds: the mutator is much faster on them than on the 100 KB
	// example model, which TestLoadExample covers.
	step := readFile(f, "testdata/step.txt")
	for _, seed := range [][]byte{step, step[:len(step)/2], []byte(modelText(categorical, constant)),
		[]byte(modelText(constant)), bytes.Replace(step, []byte("left_child=1 -1 -3"), []byte("left_child=1 -1 0"), 1), nil} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Load(modelfleet.FormatLightGBM, data)
		if err != nil {
			if m != nil || modelfleet.ErrorCode(err) != modelfleet.EINVALID {
				t.Fatalf("Load = %v, %v: want nil and an invalid error", m, err)
			}
			return
		}
		for _, v := range []float64{0, -1, 1.5, 1e9, math.NaN()} {
			x := make([]float64, m.NumFeatures())
			for i := range x {
				x[i] = v
			}
			if _, err := m.Predict(x); err != nil {
				t.Fatalf("Predict(%v...) on a loaded model: %v", v, err)
			}
		}
	})
}

func FuzzVector(f *testing.F) {
	for _, seed := range []string{
		`{"features": {"temperature_c": 61.5, "speed_rpm": 1485, "features": -2e-3}}`,
		`{"temperature_c": 61.5, "speed_rpm": 1485, "features": 1}`,
		`{"features": [1, 2, 3]}`, `[1, 2, 3]`, `[1, 2]`, `{"features": {"features": 1}}`,
		`{"a": 1, "a": 2}`, `[1e999, "x", null, true, {}]`, `{"features": [], "x": 1}`, "", " [1] x",
		"{\"features\": {\"temperature_c\": -0, \"speed_rpm\": 1.5e+2,\n\t\"features\": 0.25E-1}}", `[0, -1, 2.5e2]`,
		`{"temperature_c":01, "speed_rpm": 2, "features": 3}`, `[1,2,3,]`, `{"features":[1,2,3]} `, `{"speed_rpm":1,"features":2,"temperature_c":3}`,
	} {
		f.Add([]byte(seed), true)
		f.Add([]byte(seed), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, withSchema bool) {
		var features []string
		if withSchema {
			features = schema
		}
		row, err := Vector(features, body)
		// What the fast reader reads, the general one reads the same.
		if fast, ok := vectorFast(features, body); ok {
			slow, err := vectorSlow(features, body)
			if err != nil {
				t.Fatalf("the fast reader read %v, the general one refused: %v", fast, err)
			}
			for i := range slow {
				if math.Float64bits(fast[i]) != math.Float64bits(slow[i]) {
					t.Fatalf("the fast reader read %v, the general one %v", fast, slow)
				}
			}
		}
		if err != nil {
			if row != nil || modelfleet.ErrorCode(err) != modelfleet.EINVALID {
				t.Fatalf("Vector = %v, %v: want nil and an invalid error", row, err)
			}
			return
		}
		if withSchema && len(row) != len(schema) {
			t.Fatalf("Vector returned %d values for %d features", len(row), len(schema))
		}
		for _, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("Vector returned %v", v)
			}
		}
	})
}

func FuzzReadCSV(f *testing.F) {
	validation := readFile(f, "../examples/bearing-failure/validation.csv")
	for _, seed := range []string{
		string(validation[:600]), "b,label,a\n2,1,1\n4,0,3.5\n", "a,label\n\"7\",0\r\n", "a,a,label\n",
		"a,label\nNaN,0\n", "a,label\n1,2\n", "a,label\n\"1,0\n", "\ufeffa,label\n1,1\n", "",
	} {
		f.Add([]byte(seed), true)
		f.Add([]byte(seed), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, withSchema bool) {
		var features []string
		if withSchema {
			features = []string{"b", "a"}
		}
		d, err := ReadCSV(bytes.NewReader(data), features)
		if err != nil {
			if d != nil || modelfleet.ErrorCode(err) != modelfleet.EINVALID {
				t.Fatalf("ReadCSV = %v, %v: want nil and an invalid error", d, err)
			}
			return
		}
		if len(d.X) != len(d.Y) {
			t.Fatalf("%d rows, %d labels", len(d.X), len(d.Y))
		}
		for i, x := range d.X {
			if len(x) != len(d.Features) || (d.Y[i] != 0 && d.Y[i] != 1) {
				t.Fatalf("row %d: %v label %v for features %q", i, x, d.Y[i], d.Features)
			}
			for _, v := range x {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("row %d: %v", i, x)
				}
			}
		}
	})
}
