package main

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/modelfleet/modelfleet/examples/trees"
	"github.com/modelfleet/modelfleet/inference"
)

// features are the bearing model's six, so the generated model serves the
// bearing example's requests.
var features = []string{"vibration_rms_mm_s", "vibration_peak_g", "temperature_c", "speed_rpm", "load_pct", "bearing_age_h"}

// ranges are the features' ranges in the bearing example's data.
var ranges = [][2]float64{{1.19, 9.14}, {0.266, 6.572}, {17.8, 88.6}, {955, 3072}, {20, 115}, {1, 39988}}

// ensemble is a random binary ensemble of full trees of depth: thresholds
// drawn from the features' ranges and rounded to float32, leaf values
// small margins (also float32 values), so that every format holds the
// same numbers exactly.
func ensemble(rng *rand.Rand, numTrees, depth int) *trees.Ensemble {
	e := &trees.Ensemble{Features: features, Objective: trees.Binary}
	internal := 1<<depth - 1
	for range numTrees {
		t := trees.Tree{Feature: make([]int, internal), Threshold: make([]float64, internal),
			Left: make([]int, internal), Right: make([]int, internal), Leaf: make([]float64, internal+1)}
		// Heap order: node i's children are 2i+1 and 2i+2; the last level's
		// children are leaves, numbered left to right.
		for i := range internal {
			f := rng.IntN(len(features))
			t.Feature[i] = f
			t.Threshold[i] = float64(float32(ranges[f][0] + rng.Float64()*(ranges[f][1]-ranges[f][0])))
			for side, c := range [2]int{2*i + 1, 2*i + 2} {
				if c >= internal {
					c = ^(c - internal)
				}
				if side == 0 {
					t.Left[i] = c
				} else {
					t.Right[i] = c
				}
			}
		}
		for j := range t.Leaf {
			t.Leaf[j] = float64(float32(0.05 * rng.NormFloat64()))
		}
		e.Trees = append(e.Trees, t)
	}
	return e
}

// rows are n feature rows drawn from the ranges, float32 values.
func rows(rng *rand.Rand, n int) [][]float64 {
	X := make([][]float64, n)
	for i := range X {
		X[i] = make([]float64, len(features))
		for f, r := range ranges {
			X[i][f] = float64(float32(r[0] + rng.Float64()*(r[1]-r[0])))
		}
	}
	return X
}

// artifacts are one ensemble in the three formats.
type artifacts struct {
	ens                 *trees.Ensemble
	lightgbm, xgb, onnx []byte
}

func write(e *trees.Ensemble) (*artifacts, error) {
	a := &artifacts{ens: e}
	var lgb, xgb bytes.Buffer
	if err := e.WriteLightGBM(&lgb); err != nil {
		return nil, err
	}
	if err := e.WriteXGBoostJSON(&xgb); err != nil {
		return nil, err
	}
	o, err := e.ONNX()
	if err != nil {
		return nil, err
	}
	a.lightgbm, a.xgb, a.onnx = lgb.Bytes(), xgb.Bytes(), o
	return a, nil
}

// formats are the built-in formats in the order they are reported.
var formats = []string{inference.FormatLightGBM, inference.FormatXGBoost, inference.FormatONNX}

func (a *artifacts) file(format string) (name string, data []byte) {
	switch format {
	case inference.FormatXGBoost:
		return "model.json", a.xgb
	case inference.FormatONNX:
		return "model.onnx", a.onnx
	}
	return "model.txt", a.lightgbm
}

// agreeTolerance is how far the formats' probabilities may differ: XGBoost
// sums float32 leaves and ONNX rounds its output to float32; LightGBM works
// in float64.
const agreeTolerance = 1e-5

// agree loads the three files with the edge runtime and checks that each
// predicts what the ensemble does on every row; it returns the models and
// the largest difference seen per format.
func (a *artifacts) agree(X [][]float64) (map[string]*inference.Model, map[string]float64, error) {
	models, worst := map[string]*inference.Model{}, map[string]float64{}
	for _, f := range formats {
		_, data := a.file(f)
		m, err := inference.Load(f, data)
		if err != nil {
			return nil, nil, fmt.Errorf("load the %s file: %w", f, err)
		}
		if m.Task() != inference.TaskBinary || m.NumFeatures() != len(features) {
			return nil, nil, fmt.Errorf("the %s file loads as a %s model of %d features, want binary with %d", f, m.Task(), m.NumFeatures(), len(features))
		}
		for i, x := range X {
			got, err := m.Predict(x)
			if err != nil {
				return nil, nil, fmt.Errorf("%s row %d: %w", f, i, err)
			}
			want := a.ens.Predict(x)
			d := math.Abs(got - want)
			if !(d <= agreeTolerance) {
				return nil, nil, fmt.Errorf("%s row %d: predicts %v, the ensemble %v (difference %.3g > %g)", f, i, got, want, d, agreeTolerance)
			}
			worst[f] = max(worst[f], d)
		}
		models[f] = m
	}
	return models, worst, nil
}
