package workload

import (
	"os"
	"slices"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/simulate"
	wl "github.com/modelfleet/modelfleet/workload"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// TestManifestMatchesModel holds the manifest, the code and the model card
// to one feature schema: the check a release makes before pairing them.
func TestManifestMatchesModel(t *testing.T) {
	p, err := Program()
	if err != nil {
		t.Fatal(err)
	}
	var card struct {
		Features []string `yaml:"features"`
	}
	data, err := os.ReadFile("../model.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &card); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Manifest.FeatureNames(), card.Features) || !slices.Equal(Features(), card.Features) {
		t.Errorf("manifest %v, code %v, model card %v", p.Manifest.FeatureNames(), Features(), card.Features)
	}
	if err := spec.CheckRelease(p.Manifest, modelfleet.ModelRef{Name: "bearing-failure", Version: "1"}, card.Features); err != nil {
		t.Error(err)
	}
	var in []string
	for _, f := range p.Manifest.Input.Fields {
		in = append(in, f.Name)
	}
	if !slices.Equal(in, Inputs()) {
		t.Errorf("manifest inputs %v, code reads %v", in, Inputs())
	}
}

// TestPreparedFeaturesScore feeds simulated readings through the
// preparation code and the real model: a healthy line scores low, a machine
// whose bearing is failing scores high.
func TestPreparedFeaturesScore(t *testing.T) {
	p := MustProgram()
	data, err := os.ReadFile("../model.txt")
	if err != nil {
		t.Fatal(err)
	}
	model, err := inference.Load(modelfleet.FormatLightGBM, data)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	line, err := simulate.New(simulate.Config{Site: "s1", Machines: 8, Seed: 3, HoursPerSecond: 0.001, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	score := func(i int) (float64, []float64) {
		pr := p.NewPreparer(&p.Manifest, "m")
		row := make([]float64, len(p.Manifest.Features))
		for range p.Manifest.Window.Size {
			clock = clock.Add(10 * time.Millisecond)
			r := line.Reading(i)
			s, rj := wl.ParseSample(&p.Manifest.Input, "t", mustJSON(r), clock)
			if rj != nil {
				t.Fatal(rj)
			}
			ready, err := pr.Prepare(s, row)
			if err != nil {
				t.Fatal(err)
			}
			if ready {
				break
			}
		}
		for j, f := range p.Manifest.Features {
			if row[j] < *f.Min || row[j] > *f.Max {
				t.Errorf("feature %s = %v outside its declared range", f.Name, row[j])
			}
		}
		pred, err := model.Predict(row)
		if err != nil {
			t.Fatal(err)
		}
		return pred, row
	}
	healthy, row := score(0)
	t.Logf("healthy machine: features %v, prediction %.3f", row, healthy)
	if row[3] < 900 || row[3] > 3100 || row[0] <= 0 {
		t.Errorf("speed or vibration implausible: %v", row)
	}
	if err := line.Fail(line.Machines()[0], true); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(simulate.FailRamp)
	failing, row := score(0)
	t.Logf("failing machine: features %v, prediction %.3f", row, failing)
	if failing < 0.5 || failing <= healthy+0.3 {
		t.Errorf("failing bearing scores %.3f, healthy %.3f", failing, healthy)
	}
}
