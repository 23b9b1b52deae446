package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOtherFormatsAndTasks releases the README's "Other formats and tasks"
// examples on the embedded stack with the README's commands: the bearing
// model as XGBoost JSON and as ONNX (each with its own card), and the
// remaining-useful-life regressor. Each validates against its card's
// metric, rolls out to every site, and scores there: the bearing models a
// probability with a label, the regressor a value in hours without one.
func TestOtherFormatsAndTasks(t *testing.T) {
	s := newStack(t)
	s.start()
	root := repoRoot(t)
	bearing := filepath.Join(root, "examples", "bearing-failure")
	rul := filepath.Join(root, "examples", "remaining-useful-life")
	cases := []struct {
		name, file, card, metric, sample string
		regression                       bool
	}{
		{"bearing-failure-xgboost", filepath.Join(bearing, "model.json"), filepath.Join(bearing, "model-xgboost.yaml"), "auc", filepath.Join(bearing, "sample.json"), false},
		{"bearing-failure-onnx", filepath.Join(bearing, "model.onnx"), filepath.Join(bearing, "model-onnx.yaml"), "auc", filepath.Join(bearing, "sample.json"), false},
		{"remaining-useful-life", filepath.Join(rul, "model.json"), "", "rmse", filepath.Join(rul, "sample.json"), true},
	}
	for _, c := range cases {
		args := []string{"model", "register", "--name", c.name, "--version", "1", "--file", c.file}
		if c.card != "" {
			args = append(args, "--card", c.card)
		}
		if out := s.mustCLI(args...); !strings.Contains(string(out), "registered "+c.name+":1") {
			t.Fatalf("register %s: %q", c.name, out)
		}
	}
	for _, c := range cases {
		st := s.waitSucceeded(c.name, "1")
		if v, _ := st["validation"].(map[string]any); v["passed"] != true || v["metric"] != c.metric {
			t.Errorf("%s: validation = %v, want a passed %s check", c.name, v, c.metric)
		}
		body, err := os.ReadFile(c.sample)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range s.sitePorts {
			res, err := scoreBody(p, c.name, body)
			if err != nil {
				t.Fatal(err)
			}
			pred, ok := res["prediction"].(float64)
			_, hasLabel := res["label"]
			switch {
			case res["version"] != "1" || !ok:
				t.Errorf("%s at :%d: %v, want a prediction from version 1", c.name, p, res)
			case c.regression && (hasLabel || pred < 1000 || pred > 20000):
				t.Errorf("%s at :%d: %v, want a value in hours and no label", c.name, p, res)
			case !c.regression && (!hasLabel || pred < 0 || pred > 0.5):
				t.Errorf("%s at :%d: %v, want a healthy machine's low probability and a label", c.name, p, res)
			}
		}
	}
}

// scoreBody posts body to a site's router.
func scoreBody(port int, model string, body []byte) (map[string]any, error) {
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/score/%s", port, model), "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	buf, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("score %s at :%d: %s: %s", model, port, resp.Status, buf)
	}
	var out map[string]any
	return out, json.Unmarshal(buf, &out)
}
