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
	"time"
)

// TestOtherFormatsAndTasks releases the README's "Other formats and tasks"
// examples on the embedded stack with the README's commands: the bearing
// model as XGBoost JSON and as ONNX (each with its own card), and the
// remaining-useful-life regressor. Each validates against its card's
// metric, rolls out to every site, and scores there: the bearing models a
// probability with a label, the regressor a value in hours without one.
// Then a second version of the regressor is rolled back mid-rollout.
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
	// The README's commands, with a policy that does not wait for traffic
	// no workload sends these models (the examples' rollout.yaml extends
	// each canary step up to 30 s for it): the releases take seconds.
	policy := filepath.Join(t.TempDir(), "fast.yaml")
	if err := os.WriteFile(policy, []byte(`waves:
  - {name: canary, select: {ring: canary}, steps: [50, 100], bake: 1s, maxBake: 1s, onInconclusive: pass}
  - {name: fleet, bake: 1s, maxBake: 1s, onInconclusive: pass}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		args := []string{"model", "register", "--name", c.name, "--version", "1", "--file", c.file, "--policy", policy}
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
	mlflowMulticlass(t, s, root, policy)
	rollBackRegressor(t, s, rul)
}

// mlflowMulticlass registers an MLflow model directory as `model register
// --file <dir>` does (a scikit-learn classifier of 3 classes with an onnx
// flavour, inference/testdata/mlflow), with no card: its features come from
// the MLmodel signature. It rolls out and every site answers with the class
// and the three probabilities.
func mlflowMulticlass(t *testing.T, s *stack, root, policy string) {
	t.Helper()
	dir := filepath.Join(root, "inference", "testdata", "mlflow", "golden", "sklearn_onnx")
	if out := s.mustCLI("model", "register", "--name", "defect-class", "--version", "1", "--file", dir, "--policy", policy); !strings.Contains(string(out), "registered defect-class:1") {
		t.Fatalf("register the MLflow directory: %q", out)
	}
	st := s.waitSucceeded("defect-class", "1")
	if v, _ := st["validation"].(map[string]any); v["passed"] != true {
		t.Fatalf("validation = %v", v)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "input_example.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ex struct {
		Columns []string    `json:"columns"`
		Data    [][]float64 `json:"data"`
	}
	if err := json.Unmarshal(raw, &ex); err != nil || len(ex.Data) == 0 {
		t.Fatalf("input example: %v", err)
	}
	row := map[string]float64{}
	for i, c := range ex.Columns {
		row[c] = ex.Data[0][i]
	}
	body, _ := json.Marshal(map[string]any{"features": row})
	for _, p := range s.sitePorts {
		res, err := scoreBody(p, "defect-class", body)
		if err != nil {
			t.Fatal(err)
		}
		probs, _ := res["probabilities"].([]any)
		label, _ := res["label"].(float64)
		if res["version"] != "1" || len(probs) != 3 || label < 0 || label > 2 || res["prediction"] != res["label"] {
			t.Errorf("defect-class at :%d: %v, want a class of 3 with its probabilities", p, res)
		}
	}
}

// TestOtherFormatsAndTasks' regressor rolled back: version 2 (the same
// model re-saved, so another digest) is rolled back while its fleet wave
// bakes, and every site scores with version 1 again.
func rollBackRegressor(t *testing.T, s *stack, rul string) {
	t.Helper()
	dir := t.TempDir()
	model, err := os.ReadFile(filepath.Join(rul, "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	card, err := os.ReadFile(filepath.Join(rul, "model.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	csv, err := os.ReadFile(filepath.Join(rul, "validation.csv"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"model.json": append(model, '\n'), "model.yaml": card, "validation.csv": csv,
		"rollout.yaml": []byte(`waves:
  - {name: canary, select: {ring: canary}, steps: [100], bake: 1s, maxBake: 1s, onInconclusive: pass}
  - {name: fleet, bake: 5m, onInconclusive: pass}
`)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.mustCLI("model", "register", "--name", "remaining-useful-life", "--version", "2", "--file", filepath.Join(dir, "model.json"))
	body, err := os.ReadFile(filepath.Join(rul, "sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	rollBackInFleetWave(t, s, "remaining-useful-life", "2", "1", func(port int) (string, error) {
		res, err := scoreBody(port, "remaining-useful-life", body)
		v, _ := res["version"].(string)
		return v, err
	})
}

// rollBackInFleetWave waits until model:version's fleet wave bakes (its
// rollout.yaml: a canary at 100%, then a long fleet bake), checks that the
// canary, site-1, serves it, rolls it back as a release manager, and waits
// until every site answers with version back again (served says which
// version a site answers with).
func rollBackInFleetWave(t *testing.T, s *stack, model, version, back string, served func(port int) (string, error)) {
	t.Helper()
	waitFor(t, 2*time.Minute, model+":"+version+"'s fleet wave to bake", func() error {
		st, err := s.releaseState(model, version)
		if err != nil {
			return err
		}
		if waves, _ := st["waves"].([]any); len(waves) == 2 {
			if fleet, _ := waves[1].(map[string]any); fleet["bakeUntil"] != nil && fleet["bakeUntil"] != "" {
				return nil
			}
		}
		return fmt.Errorf("state %v waves %v", st["state"], st["waves"])
	})
	if v, err := served(s.sitePorts[0]); err != nil || v != version {
		t.Fatalf("site-1 during the fleet wave: version %q (%v), want %s", v, err, version)
	}
	if out, err := s.cliAs("release-manager.token", "release", "rollback", model, version, "--reason", "checking the rollback"); err != nil {
		t.Fatalf("rollback: %v %s", err, out)
	}
	waitState(t, s, model, version, "rolled-back")
	for _, p := range s.sitePorts {
		waitFor(t, time.Minute, fmt.Sprintf("site :%d to serve %s:%s again", p, model, back), func() error {
			v, err := served(p)
			if err != nil {
				return err
			}
			if v != back {
				return fmt.Errorf("serves %s", v)
			}
			return nil
		})
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
