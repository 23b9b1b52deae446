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

// TestExternalModelServerRelease releases a version that runs in an
// external model server on the embedded stack, as the README's "Clients of
// Triton, KServe or Azure ML" section does: every site declares the
// binary's own `oip-serve` as server "mf" (`dev --oip-server`); version 2
// of the bearing model is the example's LightGBM file in a model directory
// whose card names that server. It validates on its reference, rolls out,
// and every site answers V2 and /score requests from version 2 with
// version 1's predictions (the same file, through the server). Version 3,
// built in, is rolled back during its fleet wave: the canary site, which
// had stopped version 2's server, starts it again and serves version 2.
func TestExternalModelServerRelease(t *testing.T) {
	s := newStack(t)
	s.extra = []string{"--oip-server", "mf=" + s.bin + " oip-serve --port {port} --model-dir {model_dir} --file model.txt --model bearing"}
	s.start()
	root := repoRoot(t)
	bearing := filepath.Join(root, "examples", "bearing-failure")
	dir := t.TempDir()
	fast := filepath.Join(dir, "fast.yaml")
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(fast, `waves:
  - {name: canary, select: {ring: canary}, steps: [50, 100], bake: 1s, maxBake: 1s, onInconclusive: pass}
  - {name: fleet, bake: 1s, maxBake: 1s, onInconclusive: pass}
`)
	model, err := os.ReadFile(filepath.Join(bearing, "model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	sample, err := os.ReadFile(filepath.Join(bearing, "sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	s.mustCLI("model", "register", "--name", "bearing-failure", "--version", "1", "--file", filepath.Join(bearing, "model.txt"), "--policy", fast)
	s.waitSucceeded("bearing-failure", "1")
	v1, err := scoreBody(s.sitePorts[0], "bearing-failure", sample)
	if err != nil {
		t.Fatal(err)
	}

	write(filepath.Join(dir, "v2", "repo", "model.txt"), string(model))
	write(filepath.Join(dir, "v2", "model.yaml"), `format: oip
features: [vibration_rms_mm_s, vibration_peak_g, temperature_c, speed_rpm, load_pct, bearing_age_h]
server: {name: mf, model: bearing, task: binary}
`)
	s.mustCLI("model", "register", "--name", "bearing-failure", "--version", "2", "--file", filepath.Join(dir, "v2", "repo"), "--policy", fast)
	st := s.waitSucceeded("bearing-failure", "2")
	if v, _ := st["validation"].(map[string]any); v["passed"] != true || !strings.Contains(fmt.Sprint(v["note"]), `model server "mf"`) {
		t.Errorf("validation of the served version: %v", v)
	}
	var features struct {
		Features map[string]float64 `json:"features"`
	}
	if err := json.Unmarshal(sample, &features); err != nil {
		t.Fatal(err)
	}
	row := []float64{}
	for _, f := range []string{"vibration_rms_mm_s", "vibration_peak_g", "temperature_c", "speed_rpm", "load_pct", "bearing_age_h"} {
		row = append(row, features.Features[f])
	}
	data, _ := json.Marshal(row)
	infer := fmt.Sprintf(`{"id":"e2e","inputs":[{"name":"features","datatype":"FP64","shape":[1,6],"data":%s}]}`, data)
	for _, p := range s.sitePorts {
		waitFor(t, time.Minute, fmt.Sprintf("site :%d to answer V2 from version 2", p), func() error {
			res, err := v2Infer(p, "bearing-failure", infer)
			if err != nil {
				return err
			}
			if res.ModelVersion != "2" || res.ID != "e2e" || len(res.Outputs) != 2 || res.Outputs[0].Name != "probability" {
				return fmt.Errorf("answer %+v", res)
			}
			var prob []float64
			if err := json.Unmarshal(res.Outputs[0].Data, &prob); err != nil || len(prob) != 1 || prob[0] != v1["prediction"] {
				return fmt.Errorf("probability %s, version 1 said %v", res.Outputs[0].Data, v1["prediction"])
			}
			return nil
		})
		if res, err := scoreBody(p, "bearing-failure", sample); err != nil || res["version"] != "2" || res["prediction"] != v1["prediction"] {
			t.Errorf("/score at :%d: %v %v, want version 2 with %v", p, res, err, v1["prediction"])
		}
	}

	// Version 3, built in, rolled back during its fleet wave.
	csv, err := os.ReadFile(filepath.Join(bearing, "validation.csv"))
	if err != nil {
		t.Fatal(err)
	}
	card, err := os.ReadFile(filepath.Join(bearing, "model.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(dir, "v3", "model.txt"), string(model)+"\n")
	write(filepath.Join(dir, "v3", "model.yaml"), string(card))
	write(filepath.Join(dir, "v3", "validation.csv"), string(csv))
	write(filepath.Join(dir, "v3", "rollout.yaml"), `waves:
  - {name: canary, select: {ring: canary}, steps: [100], bake: 1s, maxBake: 1s, onInconclusive: pass}
  - {name: fleet, bake: 5m, onInconclusive: pass}
`)
	s.mustCLI("model", "register", "--name", "bearing-failure", "--version", "3", "--file", filepath.Join(dir, "v3", "model.txt"))
	rollBackInFleetWave(t, s, "bearing-failure", "3", "2", func(port int) (string, error) {
		res, err := v2Infer(port, "bearing-failure", infer)
		return res.ModelVersion, err
	})
	// /score too is answered by the server's version again.
	if res, err := scoreBody(s.sitePorts[0], "bearing-failure", sample); err != nil || res["version"] != "2" {
		t.Fatalf("site-1 after the rollback: %v (%v), want version 2", res, err)
	}
}

type v2Response struct {
	ModelVersion string `json:"model_version"`
	ID           string `json:"id"`
	Outputs      []struct {
		Name string          `json:"name"`
		Data json.RawMessage `json:"data"`
	} `json:"outputs"`
}

// v2Infer posts an Open Inference Protocol request to a site's router.
func v2Infer(port int, model, body string) (v2Response, error) {
	var out v2Response
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/v2/models/%s/infer", port, model), "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	buf, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("v2 infer %s at :%d: %s: %s", model, port, resp.Status, buf)
	}
	return out, json.Unmarshal(buf, &out)
}
