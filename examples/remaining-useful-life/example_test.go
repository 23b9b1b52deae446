// Package rul_test checks the committed remaining-useful-life example: the
// model card matches the model, the model clears its validation threshold
// through the edge runtime, and the sample scores a plausible value.
package rul_test

import (
	"bytes"
	"os"
	"slices"
	"testing"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/app"
	"github.com/modelfleet/modelfleet/inference"
)

func TestCommittedExample(t *testing.T) {
	card, err := app.ReadModelCard("model.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("model.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := inference.Load(card.Format, data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Task() != modelfleet.TaskRegression || card.Task != modelfleet.TaskRegression {
		t.Fatalf("model task %q, card task %q: want %q", m.Task(), card.Task, modelfleet.TaskRegression)
	}
	if !slices.Equal(m.FeatureNames(), card.Features) {
		t.Fatalf("model features %q, card %q", m.FeatureNames(), card.Features)
	}
	csv, err := os.ReadFile(card.Validation.Data)
	if err != nil {
		t.Fatal(err)
	}
	d, err := inference.ReadLabelled(bytes.NewReader(csv), card.Features, m.Task())
	if err != nil {
		t.Fatal(err)
	}
	rmse, err := inference.Evaluate(m, d, card.Validation.Metric)
	if err != nil {
		t.Fatal(err)
	}
	mae, err := inference.Evaluate(m, d, modelfleet.MetricMAE)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("validation on %d rows: rmse %.1f h, mae %.1f h (threshold: rmse %v)", len(d.Y), rmse, mae, card.Validation.Threshold)
	if card.Validation.Metric != modelfleet.MetricRMSE || rmse > 0.95*card.Validation.Threshold {
		t.Errorf("validation %s %.1f: want rmse comfortably below the threshold %v", card.Validation.Metric, rmse, card.Validation.Threshold)
	}
	sample, err := os.ReadFile("sample.json")
	if err != nil {
		t.Fatal(err)
	}
	x, err := inference.Vector(card.Features, sample)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := m.Predict(x); err != nil || p < 1000 || p > 20000 {
		t.Errorf("sample.json: %v h, %v; want between 1,000 and the 20,000 h cap", p, err)
	}
}
