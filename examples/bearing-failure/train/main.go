// Command train builds the bearing-failure example model: it generates a
// synthetic but physically plausible sensor data set with a fixed seed,
// trains a small gradient-boosted tree ensemble on it, and writes the files
// the quickstart registers (model.txt, validation.csv and two sample
// requests), and the same trees as XGBoost JSON (model.json) and ONNX
// (model.onnx), written by examples/trees. It exists so the example is reproducible without Python or
// LightGBM installed:
//
//	go run ./examples/bearing-failure/train -out examples/bearing-failure
//
// It is also the example's retraining job (see docs/retraining.md): with
// -data (or $MODELFLEET_TRAINING_DATA) it trains on the labelled CSV files
// in that folder instead and writes model.txt and metrics.json into -out
// (or $MODELFLEET_TRAINING_OUTPUT); -gen-data writes such a folder.
//
//	go run ./examples/bearing-failure/train -data ${{inputs.data}} -out ${{outputs.model}}
//	go run ./examples/bearing-failure/train -gen-data <dir> -seed 11 -drift 1
package main

import (
	"bytes"
	"encoding/csv"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
)

// features are the model's inputs, in model order.
var features = []string{
	"vibration_rms_mm_s", // RMS vibration velocity at the bearing housing, mm/s
	"vibration_peak_g",   // peak vibration acceleration, g
	"temperature_c",      // bearing housing temperature, °C
	"speed_rpm",          // shaft speed, rpm
	"load_pct",           // load relative to rated, %
	"bearing_age_h",      // operating hours since the bearing was fitted
}

const (
	seed      = 7
	trainRows = 8000
	validRows = 2000
)

var cfg = config{Trees: 100, Depth: 3, Rate: 0.1, Lambda: 1, MinLeaf: 20, MaxBins: 64, Features: features}

// Sample requests: a healthy machine and one about to fail.
var (
	healthy = []float64{1.6, 0.42, 55.2, 1485, 62, 5200}
	failing = []float64{7.4, 3.1, 83.5, 1485, 96, 31000}
)

func main() {
	out := flag.String("out", ".", "directory to write the model and data files to")
	data := flag.String("data", os.Getenv(envData), "train on the labelled CSV files in this folder (the retraining job contract): write model.txt and metrics.json into -out")
	gen := flag.String("gen-data", "", "write a labelled data set (train/train.csv, holdout.csv) into this folder and exit")
	genSeed := flag.Uint64("seed", 11, "with -gen-data: the random seed")
	drift := flag.Float64("drift", 0, "with -gen-data: how far the plant moved from the example's (0 = not at all, 1 = longer-life bearings and hotter-reading sensors)")
	rows := flag.Int("rows", trainRows+validRows, "with -gen-data: rows in all (a fifth of them become holdout.csv)")
	flag.Parse()
	var err error
	switch {
	case *gen != "":
		err = genData(*gen, *genSeed, *drift, *rows)
	case *data != "":
		dir := *out
		if o := os.Getenv(envOutput); o != "" && !flagSet("out") {
			dir = o
		}
		err = trainJob(*data, dir)
	default:
		err = run(*out)
	}
	if err != nil {
		log.Fatal(err)
	}
}

func run(out string) error {
	X, y := generate(rand.New(rand.NewPCG(seed, 0)), trainRows+validRows)
	ens := train(X[:trainRows], y[:trainRows], cfg)
	var model bytes.Buffer
	if err := ens.writeLightGBM(&model); err != nil {
		return err
	}
	other, err := ens.otherFormats()
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"model.txt":           model.Bytes(),
		"model.json":          other[modelfleet.FormatXGBoost],
		"model.onnx":          other[modelfleet.FormatONNX],
		"validation.csv":      csvBytes(X[trainRows:], y[trainRows:]),
		"sample.json":         sampleJSON(healthy),
		"sample-failing.json": sampleJSON(failing),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(out, name), data, 0o644); err != nil {
			return err
		}
	}

	// Report through the edge runtime, as the validator will see it.
	m, err := inference.Load(modelfleet.FormatLightGBM, model.Bytes())
	if err != nil {
		return err
	}
	d, err := inference.ReadCSV(bytes.NewReader(files["validation.csv"]), features)
	if err != nil {
		return err
	}
	auc, err := inference.Evaluate(m, d, modelfleet.MetricAUC)
	if err != nil {
		return err
	}
	for _, f := range []string{modelfleet.FormatXGBoost, modelfleet.FormatONNX} {
		o, err := inference.Load(f, other[f])
		if err != nil {
			return fmt.Errorf("the %s file: %w", f, err)
		}
		a, err := inference.Evaluate(o, d, modelfleet.MetricAUC)
		if err != nil {
			return err
		}
		fmt.Printf("%s file: validation AUC %.4f\n", f, a)
	}
	pos := 0.0
	for _, v := range y {
		pos += v
	}
	ph, _ := m.Predict(healthy)
	pf, _ := m.Predict(failing)
	fmt.Printf("rows %d (%.1f%% failing), %d trees; validation AUC %.4f; sample %.3f, sample-failing %.3f\n",
		len(y), 100*pos/float64(len(y)), len(ens.trees), auc, ph, pf)
	return nil
}

// generate simulates n snapshots of motors in a plant. A hidden degradation
// level grows with the bearing's consumed rated life (ISO 281: life falls
// with the cube of load and with speed) and shows up, with sensor noise, in
// vibration and temperature. The label, "fails within the horizon", is drawn
// from a hazard that rises steeply with degradation and with heat.
func generate(rng *rand.Rand, n int) (X [][]float64, y []float64) {
	return generatePlant(rng, n, 0)
}

// generatePlant is generate for a plant that drifted by drift: bearings
// whose rated life is 1+1.5*drift times longer (a better bearing type, so
// age says less), and temperature sensors reading 6*drift °C high (a new
// sensor, so heat says less). With drift 0 it draws the same numbers as
// generate always did.
func generatePlant(rng *rand.Rand, n int, drift float64) (X [][]float64, y []float64) {
	norm := rng.NormFloat64
	for range n {
		speed := []float64{990, 1485, 2975}[rng.IntN(3)] * (1 + 0.01*norm())
		load := clamp(70+15*norm(), 20, 115)
		age := 40000 * rng.Float64()
		life := 30000 * math.Pow(75/load, 3) * (1485 / speed) * (1 + 1.5*drift)
		wear := age / life * math.Exp(0.4*norm()) // unit-to-unit spread
		d := 1 - math.Exp(-wear*wear)             // degradation, 0..1

		rms := 0.8 + 0.6*speed/1485 + 6*d*d + 0.4*math.Abs(norm())
		peak := 0.2 + 0.1*speed/1485 + 3*math.Pow(d, 1.5) + 0.15*math.Abs(norm())
		if rng.Float64() < 0.05 {
			peak += 1 + 2*rng.Float64() // process impacts, not the bearing
		}
		temp := 25 + 5*norm() + 0.3*load + 18*d*d + 2*norm()

		logit := -5 + 7*d + 0.08*math.Max(0, temp-80) + 0.6*norm()
		label := 0.0
		if rng.Float64() < 1/(1+math.Exp(-logit)) {
			label = 1
		}
		// Rounded to what the sensors report.
		X = append(X, []float64{round(rms, 2), round(peak, 3), round(temp+6*drift, 1), math.Round(speed), round(load, 1), math.Round(age)})
		y = append(y, label)
	}
	return X, y
}

func clamp(v, lo, hi float64) float64 { return math.Min(hi, math.Max(lo, v)) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func csvBytes(X [][]float64, y []float64) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(append(append([]string(nil), features...), inference.LabelColumn))
	for i, x := range X {
		rec := make([]string, 0, len(x)+1)
		for _, v := range x {
			rec = append(rec, strconv.FormatFloat(v, 'f', -1, 64))
		}
		w.Write(append(rec, strconv.Itoa(int(y[i]))))
	}
	w.Flush()
	return b.Bytes()
}

// sampleJSON writes a request body in model order (encoding/json would sort
// the keys).
func sampleJSON(x []float64) []byte {
	lines := make([]string, len(x))
	for i, v := range x {
		lines[i] = fmt.Sprintf("    %q: %s", features[i], strconv.FormatFloat(v, 'f', -1, 64))
	}
	return []byte("{\n  \"features\": {\n" + strings.Join(lines, ",\n") + "\n  }\n}\n")
}
