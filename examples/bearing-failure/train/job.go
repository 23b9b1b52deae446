package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
)

// The retraining job contract (docs/retraining.md; package training): the
// runner names the input folder of labelled CSVs and the output folder.
const (
	envData   = "MODELFLEET_TRAINING_DATA"
	envOutput = "MODELFLEET_TRAINING_OUTPUT"
	// minRows is the least a retraining may learn from: fewer rows than
	// that and its leaves (20 rows each) say nothing.
	minRows = 200
)

// jobMetrics is what metrics.json says about a training run.
type jobMetrics struct {
	Rows      int     `json:"rows"`
	Positives int     `json:"positives"`
	Files     int     `json:"files"`
	Trees     int     `json:"trees"`
	TrainAUC  float64 `json:"train_auc"`
}

// trainJob trains on every *.csv below dataDir (in name order; columns by
// header, the label column "label") and writes model.txt and metrics.json
// into out. Anything unusable in the data fails the run with a message that
// names the file and line, which the runner shows in the run's status.
func trainJob(dataDir, out string) error {
	var files []string
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.EqualFold(filepath.Ext(path), ".csv") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("training data: %w", err)
	}
	slices.Sort(files)
	if len(files) == 0 {
		return fmt.Errorf("training data: no .csv files in %s", dataDir)
	}
	var X [][]float64
	var y []float64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("training data: %w", err)
		}
		d, err := inference.ReadCSV(bytes.NewReader(b), features)
		if err != nil {
			return fmt.Errorf("training data %s: %s", f, modelfleet.ErrorMessage(err))
		}
		X, y = append(X, d.X...), append(y, d.Y...)
	}
	pos := 0
	for _, v := range y {
		pos += int(v)
	}
	if len(y) < minRows || pos == 0 || pos == len(y) {
		return fmt.Errorf("training data: %d rows, %d failing: want at least %d rows with both labels", len(y), pos, minRows)
	}
	ens := train(X, y, cfg)
	var model bytes.Buffer
	if err := ens.writeLightGBM(&model); err != nil {
		return err
	}
	m, err := inference.Load(modelfleet.FormatLightGBM, model.Bytes())
	if err != nil {
		return fmt.Errorf("the trained model does not load: %w", err)
	}
	auc, err := inference.Evaluate(m, &inference.Dataset{Features: features, X: X, Y: y}, modelfleet.MetricAUC)
	if err != nil {
		return err
	}
	metrics, _ := json.MarshalIndent(jobMetrics{Rows: len(y), Positives: pos, Files: len(files), Trees: len(ens.trees), TrainAUC: auc}, "", "  ")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	// metrics.json first: model.txt is what marks the output complete.
	if err := os.WriteFile(filepath.Join(out, "metrics.json"), append(metrics, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "model.txt"), model.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Printf("trained on %d rows from %d files (%.1f%% failing), %d trees; training AUC %.4f\n",
		len(y), len(files), 100*float64(pos)/float64(len(y)), len(ens.trees), auc)
	return nil
}

// genData writes a labelled data set of the (possibly drifted) plant:
// train/train.csv with four fifths of the rows and holdout.csv with the
// rest, the layout the embedded stack's retraining reads.
func genData(dir string, seed uint64, drift float64, rows int) error {
	if rows < 10 {
		return fmt.Errorf("-rows %d: want at least 10", rows)
	}
	X, y := generatePlant(rand.New(rand.NewPCG(seed, 0)), rows, drift)
	cut := rows * 4 / 5
	if err := os.MkdirAll(filepath.Join(dir, "train"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "train", "train.csv"), csvBytes(X[:cut], y[:cut]), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "holdout.csv"), csvBytes(X[cut:], y[cut:]), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %d training rows to %s and %d holdout rows to %s (seed %d, drift %g)\n",
		cut, filepath.Join(dir, "train", "train.csv"), rows-cut, filepath.Join(dir, "holdout.csv"), seed, drift)
	return nil
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
