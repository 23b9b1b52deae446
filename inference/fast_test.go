package inference

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/examples/trees"
	"github.com/modelfleet/modelfleet/inference/forest"
)

// ownWalk is m with the fast walk switched off: each format walks its own
// trees, as before package forest.
func ownWalk(t *testing.T, m *Model) *Model {
	t.Helper()
	c := *m
	switch rt := m.rt.(type) {
	case *lgbModel:
		cp := *rt
		cp.fast = nil
		c.rt = &cp
	case *xgbModel:
		cp := *rt
		cp.fast = nil
		c.rt = &cp
	default:
		t.Fatalf("%T is not a tree format of this package", m.rt)
	}
	return &c
}

// walkedItself counts the trees of m the fast walk leaves to the format.
func walkedItself(m *Model, x []float64) int {
	lm, ok := m.rt.(*lgbModel)
	if !ok || lm.fast.get() == nil {
		return 0
	}
	row := make([]float64, len(x))
	for i, v := range x {
		row[i] = lgbValue(v)
	}
	ids := make([]int32, lm.fast.get().Trees())
	lm.fast.get().Leaves(row, 0, ids)
	n := 0
	for _, id := range ids {
		if id == forest.WalkItself {
			n++
		}
	}
	return n
}

// fastModels are the LightGBM and XGBoost models of the tests: the golden
// files the real libraries wrote, LightGBM's and leaves' test models, a
// random ensemble of the examples in both formats, and a stump of every
// LightGBM decision type.
func fastModels(t *testing.T) map[string]*Model {
	t.Helper()
	files := map[string][]byte{}
	for _, glob := range []string{"testdata/lightgbm/boosters/*/model.txt", "testdata/lightgbm/treelite/*_model.txt",
		"testdata/lightgbm/leaves/*.model", "testdata/lightgbm/leaves/*.model.gz",
		"testdata/xgboost/golden/*.json", "testdata/xgboost/golden/*.ubj"} {
		paths, _ := filepath.Glob(glob)
		for _, p := range paths {
			if strings.HasSuffix(p, ".expected.json") {
				continue
			}
			if strings.Contains(p, "lightgbm") {
				rel, _ := filepath.Rel("testdata/lightgbm", p)
				files[p] = readModelFile(t, rel)
			} else {
				files[p] = readFile(t, p)
			}
		}
	}
	rng := rand.New(rand.NewPCG(9, 9))
	e := trees.Random(rng, trees.Binary, 40)
	var lgb, xgb bytes.Buffer
	if err := e.WriteLightGBM(&lgb); err != nil {
		t.Fatal(err)
	}
	if err := e.WriteXGBoostJSON(&xgb); err != nil {
		t.Fatal(err)
	}
	files["random.txt"], files["random.json"] = lgb.Bytes(), xgb.Bytes()
	for _, missing := range []int{lgbMissingNone, lgbMissingZero, lgbMissingNaN} {
		for _, def := range []int{0, 2} {
			for _, th := range []string{"0.5", "-0.5", "0", "1e-36"} {
				text := lgbFile("binary sigmoid:1", 1, 1, "", stump(th, missing<<2|def), leafOnly(0.25), stump("0.25", missing<<2|def))
				files[fmt.Sprintf("stump %s decision_type=%d", th, missing<<2|def)] = []byte(text)
			}
		}
	}
	models := map[string]*Model{}
	for name, data := range files {
		format := modelfleet.FormatLightGBM
		if f, _ := Detect(data); f != "" {
			format = f
		}
		m, err := Load(format, data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		models[name] = m
	}
	return models
}

// TestFastWalkIsEachFormatsOwn: on every model and rows of every kind of
// value (NaN, zeros, LightGBM's zero threshold, infinities, the thresholds
// themselves), the fast walk's outputs are bit for bit the format's own.
func TestFastWalkIsEachFormatsOwn(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 5))
	special := []float64{math.NaN(), 0, math.Copysign(0, -1), 1e-36, -1e-36, 1e-35, math.Inf(1), math.Inf(-1),
		0.5, -0.5, 0.25, 1, -1, math.MaxFloat64, float64(math.MaxFloat32) * 2}
	models := fastModels(t)
	if len(models) < 40 {
		t.Fatalf("%d models, want the test files and the stumps", len(models))
	}
	partly := 0
	for name, m := range models {
		compiled := false
		switch rt := m.rt.(type) {
		case *lgbModel:
			compiled = rt.fast.get() != nil
		case *xgbModel:
			compiled = rt.fast.get() != nil
		}
		if !compiled {
			t.Errorf("%s: no fast walk", name)
			continue
		}
		own := ownWalk(t, m)
		x := make([]float64, m.NumFeatures())
		for r := range 400 {
			for i := range x {
				switch rng.IntN(3) {
				case 0:
					x[i] = special[rng.IntN(len(special))]
				default:
					x[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(4)))
				}
			}
			if r == 0 {
				partly += min(walkedItself(m, x), 1)
			}
			got, err1 := m.Probabilities(x, nil)
			want, err2 := own.Probabilities(x, nil)
			if err1 != nil || err2 != nil {
				if fmt.Sprint(err1) != fmt.Sprint(err2) {
					t.Fatalf("%s row %v: fast walk %v, own walk %v", name, x, err1, err2)
				}
				continue // a non-finite output, refused either way
			}
			for k := range want {
				if math.Float64bits(got[k]) != math.Float64bits(want[k]) && !(math.IsNaN(got[k]) && math.IsNaN(want[k])) {
					t.Fatalf("%s row %v output %d: fast walk %v, own walk %v", name, x, k, got[k], want[k])
				}
			}
		}
	}
	// The categorical model and the zero-as-missing stumps whose default is
	// not where 0 goes have trees the format walks itself.
	if partly < 2 {
		t.Errorf("%d models had trees left to the format's own walk, want the categorical one and the zero-as-missing stumps", partly)
	}
}
