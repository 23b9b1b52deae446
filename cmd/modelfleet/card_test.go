package main

import "testing"

// Without --card, a file whose content another card in its directory
// describes takes that card: the bearing example's model.json its
// model-xgboost.yaml, model.onnx its model-onnx.yaml, model.txt model.yaml.
func TestLoadCardForTheFilesFormat(t *testing.T) {
	for file, want := range map[string]string{"model.txt": "lightgbm", "model.json": "xgboost", "model.onnx": "onnx"} {
		c, err := loadCard("", "../../examples/bearing-failure/"+file)
		if err != nil || c.Format != want {
			t.Errorf("%s: card format %q (%v), want %q", file, c.Format, err, want)
		}
	}
	// An explicit card is taken as it is.
	if c, err := loadCard("../../examples/bearing-failure/model.yaml", "../../examples/bearing-failure/model.json"); err != nil || c.Format != "lightgbm" {
		t.Errorf("--card: %q %v", c.Format, err)
	}
}
