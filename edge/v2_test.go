package edge

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
)

// v2Body is a V2 request of rows as one tensor [N, F].
func v2Body(datatype string, rows ...[]float64) string {
	flat := []float64{}
	for _, r := range rows {
		flat = append(flat, r...)
	}
	data, _ := json.Marshal(flat)
	f := 0
	if len(rows) > 0 {
		f = len(rows[0])
	}
	return fmt.Sprintf(`{"id":"req-1","inputs":[{"name":"input","datatype":%q,"shape":[%d,%d],"data":%s}]}`, datatype, len(rows), f, data)
}

func decodeV2(t *testing.T, body []byte) (V2InferResponse, map[string][]float64) {
	t.Helper()
	var res V2InferResponse
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("response %s: %v", body, err)
	}
	out := map[string][]float64{}
	for _, o := range res.Outputs {
		var v []float64
		if err := json.Unmarshal(o.Data, &v); err != nil {
			t.Fatalf("output %s: %v", o.Name, err)
		}
		if n := o.Shape[0] * o.Shape[1]; int64(len(v)) != n {
			t.Fatalf("output %s has %d values for shape %v", o.Name, len(v), o.Shape)
		}
		out[o.Name+":"+o.Datatype] = v
	}
	return res, out
}

// TestV2InferTasks serves real XGBoost models (trained by the library,
// inference/testdata/xgboost) and checks each V2 answer against the
// model's own predictions, row by row, in both input layouts.
func TestV2InferTasks(t *testing.T) {
	r := NewRouter("site-1", inference.Vector, testLogger(t))
	defer r.Close()
	h := r.Handler()
	rows := [][]float64{{1.5, -0.3, 2.1, 0.4, -1.2}, {-2, 0.5, 0.1, 3, 0.7}, {0, 0, 0, 0, 0}}
	for _, c := range []struct{ name, task string }{
		{"binary", modelfleet.TaskBinary}, {"softprob", modelfleet.TaskMulticlass}, {"regression", modelfleet.TaskRegression},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, lm := realModel(t, c.name)
			r.Swap(lm)
			named := V2InferRequest{}
			for j, f := range lm.Features {
				col := make([]float64, len(rows))
				for i := range rows {
					col[i] = rows[i][j]
				}
				data, _ := json.Marshal(col)
				named.Inputs = append(named.Inputs, V2Tensor{Name: f, Datatype: "FP64", Shape: []int64{int64(len(rows))}, Data: data})
			}
			namedBody, _ := json.Marshal(named)
			for _, body := range []string{v2Body("FP64", rows...), string(namedBody)} {
				rec := do(h, "POST", "/v2/models/"+c.name+"/infer", body)
				if rec.Code != 200 {
					t.Fatalf("infer: %d %s", rec.Code, rec.Body)
				}
				res, out := decodeV2(t, rec.Body.Bytes())
				if res.ModelName != c.name || res.ModelVersion != "1" {
					t.Errorf("response names %q %q", res.ModelName, res.ModelVersion)
				}
				for i, row := range rows {
					switch c.task {
					case modelfleet.TaskBinary:
						p, _ := m.Predict(row)
						if got := out["probability:FP64"][i]; got != p {
							t.Errorf("row %d: probability %v, want %v", i, got, p)
						}
						if got := out["label:INT64"][i]; got != float64(labelOf(p)) {
							t.Errorf("row %d: label %v for %v", i, got, p)
						}
					case modelfleet.TaskMulticlass:
						probs, _ := m.Probabilities(row, nil)
						k := len(probs)
						if got := out["probabilities:FP64"][i*k : (i+1)*k]; fmt.Sprint(got) != fmt.Sprint(probs) {
							t.Errorf("row %d: probabilities %v, want %v", i, got, probs)
						}
						p, _ := m.Predict(row)
						if got := out["label:INT64"][i]; got != p {
							t.Errorf("row %d: label %v, want %v", i, got, p)
						}
					default:
						p, _ := m.Predict(row)
						if got := out["value:FP64"][i]; got != p {
							t.Errorf("row %d: value %v, want %v", i, got, p)
						}
						if _, ok := out["label:INT64"]; ok {
							t.Error("a regressor answered a label")
						}
					}
				}
			}
			// FP32 in, FP32 out: the values are the model's on the
			// float32-rounded row, rounded to float32.
			rec := do(h, "POST", "/v2/models/"+c.name+"/versions/1/infer", v2Body("FP32", rows[0]))
			if rec.Code != 200 {
				t.Fatalf("infer FP32: %d %s", rec.Code, rec.Body)
			}
			_, out := decodeV2(t, rec.Body.Bytes())
			r32 := make([]float64, len(rows[0]))
			for j, v := range rows[0] {
				r32[j] = float64(float32(v))
			}
			p, _ := m.Predict(r32)
			name := map[string]string{modelfleet.TaskBinary: "probability:FP32", modelfleet.TaskMulticlass: "label:INT64", modelfleet.TaskRegression: "value:FP32"}[c.task]
			if got := out[name][0]; float32(got) != float32(p) {
				t.Errorf("FP32: %s = %v, want %v", name, got, float32(p))
			}
		})
	}
}

func TestV2Metadata(t *testing.T) {
	_, h := newTestRouter(t)
	for path, want := range map[string]int{
		"/v2/health/live": 200, "/v2/health/ready": 200, "/v2": 200,
		"/v2/models/bearing-failure/ready": 200, "/v2/models/bearing-failure/versions/1/ready": 200,
		"/v2/models/bearing-failure/versions/9/ready": 404, "/v2/models/pump/ready": 404,
		"/v2/models/bearing-failure/nothing": 404,
	} {
		if rec := do(h, "GET", path, ""); rec.Code != want {
			t.Errorf("GET %s = %d %s, want %d", path, rec.Code, rec.Body, want)
		}
	}
	if rec := do(NewRouter("s", fakeVector, nil).Handler(), "GET", "/v2/health/ready", ""); rec.Code != 503 {
		t.Errorf("an empty router is ready: %d", rec.Code)
	}
	var md V2ModelMetadata
	if err := json.Unmarshal(do(h, "GET", "/v2/models/bearing-failure", "").Body.Bytes(), &md); err != nil {
		t.Fatal(err)
	}
	if md.Name != "bearing-failure" || fmt.Sprint(md.Versions) != "[1]" || len(md.Inputs) != 3 || md.Inputs[1].Name != "vibration" ||
		md.Inputs[1].Datatype != "FP64" || len(md.Outputs) != 2 || md.Outputs[0].Name != V2OutputProbability || md.Platform != "modelfleet_lightgbm" {
		t.Errorf("metadata = %+v", md)
	}
}

// TestV2StatusCodes: every failure is a V2 error body with its status, and
// counted like a score request's.
func TestV2StatusCodes(t *testing.T) {
	r, h := newTestRouter(t)
	_, authed := newTestRouter(t, "secret-key")
	good := v2Body("FP64", []float64{1, 2, 3})
	big := `{"inputs":[],"pad":"` + strings.Repeat("x", MaxV2Body) + `"}`
	tooMany := make([][]float64, MaxV2Rows+1)
	for i := range tooMany {
		tooMany[i] = []float64{1, 2, 3}
	}
	manyRows := v2Body("FP64", tooMany...)
	for _, c := range []struct {
		name, method, path, body string
		h                        http.Handler
		header                   []string
		status                   int
		msgHas                   string
	}{
		{"ok", "POST", "/v2/models/bearing-failure/infer", good, h, nil, 200, ""},
		{"pinned", "POST", "/v2/models/bearing-failure/versions/1/infer", good, h, nil, 200, ""},
		{"not loaded", "POST", "/v2/models/bearing-failure/versions/2/infer", good, h, nil, 404, `version "2" of model "bearing-failure" is not loaded`},
		{"two pins", "POST", "/v2/models/bearing-failure/versions/1/infer", good, h, []string{HeaderVersion, "2"}, 400, "pins"},
		{"unknown model", "POST", "/v2/models/pump/infer", good, h, nil, 404, `model "pump" is not served`},
		{"GET infer", "GET", "/v2/models/bearing-failure/infer", "", h, nil, 405, "POST"},
		{"no key", "POST", "/v2/models/bearing-failure/infer", good, authed, nil, 401, "Bearer"},
		{"no key metadata", "GET", "/v2/models/bearing-failure", "", authed, nil, 401, "Bearer"},
		{"no key unknown", "GET", "/v2/models/pump", "", authed, nil, 401, "Bearer"},
		// Every model route asks for the key; health and server metadata,
		// like /healthz, do not.
		{"no key pinned infer", "POST", "/v2/models/bearing-failure/versions/1/infer", good, authed, nil, 401, "Bearer"},
		{"no key version metadata", "GET", "/v2/models/bearing-failure/versions/1", "", authed, nil, 401, "Bearer"},
		{"no key ready", "GET", "/v2/models/bearing-failure/ready", "", authed, nil, 401, "Bearer"},
		{"no key version ready", "GET", "/v2/models/bearing-failure/versions/1/ready", "", authed, nil, 401, "Bearer"},
		{"wrong key", "POST", "/v2/models/bearing-failure/infer", good, authed, []string{"Authorization", "Bearer other-key"}, 401, "Bearer"},
		{"health open", "GET", "/v2/health/live", "", authed, nil, 200, ""},
		{"ready open", "GET", "/v2/health/ready", "", authed, nil, 200, ""},
		{"server metadata open", "GET", "/v2", "", authed, nil, 200, ""},
		{"key", "POST", "/v2/models/bearing-failure/infer", good, authed, []string{"Authorization", "Bearer secret-key"}, 200, ""},
		{"too large", "POST", "/v2/models/bearing-failure/infer", big, h, nil, 413, "1048576"},
		{"not json", "POST", "/v2/models/bearing-failure/infer", `{"inputs":`, h, nil, 400, "not a V2 inference request"},
		{"no inputs", "POST", "/v2/models/bearing-failure/infer", `{"inputs":[]}`, h, nil, 400, "inputs are required"},
		{"wrong width", "POST", "/v2/models/bearing-failure/infer", v2Body("FP64", []float64{1, 2}), h, nil, 400, "got 1 input tensors"},
		{"too many rows", "POST", "/v2/models/bearing-failure/infer", manyRows, h, nil, 400, "1 to 1024 rows"},
		{"bytes", "POST", "/v2/models/bearing-failure/infer", `{"inputs":[{"name":"x","datatype":"BYTES","shape":[1,3],"data":["a","b","c"]}]}`, h, nil, 400, `datatype "BYTES" is not supported`},
		{"short data", "POST", "/v2/models/bearing-failure/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[2,3],"data":[1,2,3]}]}`, h, nil, 400, "data has 3 elements, its shape [2 3] says 6"},
		{"long data", "POST", "/v2/models/bearing-failure/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3,4]}]}`, h, nil, 400, "more than the 3 elements"},
		{"null", "POST", "/v2/models/bearing-failure/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,null,3]}]}`, h, nil, 400, "null"},
		{"string", "POST", "/v2/models/bearing-failure/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,"2",3]}]}`, h, nil, 400, "array of numbers"},
		{"fp32 range", "POST", "/v2/models/bearing-failure/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,1e39,3]}]}`, h, nil, 400, "FP32"},
		{"huge shape", "POST", "/v2/models/bearing-failure/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[65536,65536],"data":[]}]}`, h, nil, 400, "elements"},
		{"negative shape", "POST", "/v2/models/bearing-failure/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[-1,3],"data":[]}]}`, h, nil, 400, "dimensions"},
		{"deep", "POST", "/v2/models/bearing-failure/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[[[[[[[[[1,2,3]]]]]]]]]}]}`, h, nil, 400, "nested"},
		{"unknown feature", "POST", "/v2/models/bearing-failure/infer", `{"inputs":[{"name":"temp","datatype":"FP32","shape":[1],"data":[1]},{"name":"rpm","datatype":"FP32","shape":[1],"data":[1]},{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`, h, nil, 400, `input "x" is not a feature`},
		{"twice", "POST", "/v2/models/bearing-failure/infer", `{"inputs":[{"name":"temp","datatype":"FP32","shape":[1],"data":[1]},{"name":"temp","datatype":"FP32","shape":[1],"data":[1]},{"name":"rpm","datatype":"FP32","shape":[1],"data":[1]}]}`, h, nil, 400, "twice"},
		{"rows differ", "POST", "/v2/models/bearing-failure/infer", `{"inputs":[{"name":"temp","datatype":"FP32","shape":[1],"data":[1]},{"name":"vibration","datatype":"FP32","shape":[2],"data":[1,2]},{"name":"rpm","datatype":"FP32","shape":[1],"data":[1]}]}`, h, nil, 400, "rows"},
		{"unknown output", "POST", "/v2/models/bearing-failure/infer", `{"outputs":[{"name":"logits"}],"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}`, h, nil, 400, `"probability", "label"`},
		{"binary data", "POST", "/v2/models/bearing-failure/infer", `{"parameters":{"binary_data_output":true},"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}`, h, nil, 400, "binary_data_output is not supported"},
		{"parameters not object", "POST", "/v2/models/bearing-failure/infer", `{"parameters":[1],"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}`, h, nil, 400, "JSON object"},
		{"unknown v2 path", "GET", "/v2/repository/index", "", h, nil, 404, "no route"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := do(c.h, c.method, c.path, c.body, c.header...)
			if rec.Code != c.status {
				t.Fatalf("status %d %s, want %d", rec.Code, rec.Body, c.status)
			}
			var e map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
				t.Fatalf("body %s: %v", rec.Body, err)
			}
			if c.status != 200 {
				msg, _ := e["error"].(string)
				if len(e) != 1 || !strings.Contains(msg, c.msgHas) {
					t.Errorf("error body %s, want only \"error\" with %q", rec.Body, c.msgHas)
				}
			}
		})
	}
	body := do(h, "GET", "/metrics", "").Body.String()
	for _, want := range []string{
		`modelfleet_edge_score_requests_total{model="bearing-failure",outcome="ok",site="site-1",version="1"} 2`,
		`modelfleet_edge_score_requests_total{model="bearing-failure",outcome="too_large",site="site-1",version="1"} 1`,
		`modelfleet_edge_score_requests_total{model="(unknown)",outcome="not_found",site="site-1",version=""} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s\n%s", want, grepLines(body, "requests_total"))
		}
	}
	_ = r
}

// TestV2SharesTheScorePath: a V2 request is split, pinned, sticky,
// mirrored to shadows, observed and remembered for feedback as a score
// request is.
func TestV2SharesTheScorePath(t *testing.T) {
	r := NewRouter("site-1", fakeVector, testLogger(t))
	defer r.Close()
	err := r.Set("m", []WeightedModel{
		{LoadedModel: version("1", testFeatures, &fakeScorer{weights: []float64{1, 1, 1}}), Weight: 50},
		{LoadedModel: version("2", testFeatures, &fakeScorer{weights: []float64{-1, -1, -1}}), Weight: 50},
		{LoadedModel: version("3", []string{"rpm", "temp"}, &fakeScorer{weights: []float64{1, 1}}), Shadow: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	o := &recorder{}
	r.SetObserver(o)
	h := r.Handler()
	body := v2Body("FP64", []float64{1, 2, 3}, []float64{-3, -2, -1})
	// The route key picks the same version for V2 as for /score.
	seen := map[string]bool{}
	for i := range 40 {
		key := fmt.Sprintf("machine-%d", i)
		v2 := do(h, "POST", "/v2/models/m/infer", body, HeaderRouteKey, key)
		score := do(h, "POST", "/score/m", goodRow, HeaderRouteKey, key)
		if v2.Code != 200 || score.Code != 200 {
			t.Fatalf("v2 %d %s, score %d %s", v2.Code, v2.Body, score.Code, score.Body)
		}
		if a, b := v2.Header().Get(HeaderVersion), score.Header().Get(HeaderVersion); a != b {
			t.Errorf("key %s: V2 went to %s, /score to %s", key, a, b)
		}
		seen[v2.Header().Get(HeaderVersion)] = true
	}
	if !seen["1"] || !seen["2"] || seen["3"] {
		t.Errorf("versions answering = %v, want 1 and 2 (50/50), never the shadow", seen)
	}
	// A header pins, even the shadow.
	rec := do(h, "POST", "/v2/models/m/infer", body, HeaderVersion, "2")
	if res, out := decodeV2(t, rec.Body.Bytes()); res.ModelVersion != "2" || out["probability:FP64"][0] >= 0.5 {
		t.Errorf("pinned to 2: %s", rec.Body)
	}
	// The shadow scored every row (80 + 2 rows), with the row mapped to its features.
	s := r.lookup("m").version("3")
	waitFor(t, "the shadow's answers", func() bool {
		return testutil.ToFloat64(s.m.shadowOK)+testutil.ToFloat64(s.m.shadowErrors) >= 82+40
	})
	if errs := testutil.ToFloat64(s.m.shadowErrors); errs != 0 {
		t.Errorf("shadow errors = %v", errs)
	}
	o.mu.Lock()
	if len(o.scored) != 80+2+40 {
		t.Errorf("observed %d rows, want 122 (two per V2 request, one per score request)", len(o.scored))
	}
	o.mu.Unlock()
	// Feedback: the request's id, "/<row>" for each row of a batch.
	do(h, "POST", "/v2/models/m/infer", body, HeaderVersion, "1")
	for row, label := range map[string]int{"req-1/0": 1, "req-1/1": 0} {
		rec := do(h, "POST", "/feedback/m", fmt.Sprintf(`{"requestId":%q,"label":%d}`, row, label))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"correct":true`) {
			t.Errorf("feedback %s: %d %s", row, rec.Code, rec.Body)
		}
	}
}

// FuzzV2Infer: any body is answered with a prediction for every row or a
// V2 error, never a panic or another status.
func FuzzV2Infer(f *testing.F) {
	for _, seed := range []string{
		v2Body("FP64", []float64{1, 2, 3}), v2Body("FP32", []float64{1, 2, 3}, []float64{4, 5, 6}),
		`{"inputs":[{"name":"temp","datatype":"INT64","shape":[1,1],"data":[1]},{"name":"vibration","datatype":"FP32","shape":[1],"data":[[2]]},{"name":"rpm","datatype":"FP64","shape":[1],"data":[3]}]}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[[1,2,3]]}],"outputs":[{"name":"label"}]}`,
		``, `{}`, `null`, `{"inputs":null}`, `{"inputs":[{"shape":[0,3],"data":[]}]}`, "\x00\xff",
		`{"inputs":[{"name":"x","datatype":"FP64","shape":[1,3],"data":[1e308,-1e308,0]}]}`,
	} {
		f.Add([]byte(seed))
	}
	_, h := newTestRouter(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := do(h, "POST", "/v2/models/bearing-failure/infer", string(body))
		switch rec.Code {
		case 200:
			var res V2InferResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || len(res.Outputs) == 0 {
				t.Fatalf("200 with body %s", rec.Body)
			}
			for _, o := range res.Outputs {
				var v []float64
				if err := json.Unmarshal(o.Data, &v); err != nil || len(o.Shape) != 2 || int64(len(v)) != o.Shape[0]*o.Shape[1] || o.Shape[0] < 1 || o.Shape[0] > MaxV2Rows {
					t.Fatalf("output %+v", o)
				}
				for _, x := range v {
					if math.IsNaN(x) || x < 0 || x > 1 {
						t.Fatalf("output %s = %v", o.Name, v)
					}
				}
			}
		case 400, 413:
			var e map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e["error"] == "" {
				t.Fatalf("error body %s", rec.Body)
			}
		default:
			t.Fatalf("status %d %s for body %q", rec.Code, rec.Body, body)
		}
	})
}
