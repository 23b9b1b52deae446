package edge

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
)

// TestV2ClientTasks scores through NewV2Client against a V2 server — a
// router serving the real XGBoost models over its own V2 endpoints — and
// compares each task's answers with the model's.
func TestV2ClientTasks(t *testing.T) {
	rows := [][]float64{{1.5, -0.3, 2.1, 0.4, -1.2}, {-2, 0.5, 0.1, 3, 0.7}}
	for _, c := range []struct {
		name   string
		server modelfleet.ModelServer
	}{
		{"binary", modelfleet.ModelServer{Task: modelfleet.TaskBinary}},
		{"softprob", modelfleet.ModelServer{Task: modelfleet.TaskMulticlass, Classes: 3}},
		{"regression", modelfleet.ModelServer{Task: modelfleet.TaskRegression, Output: V2OutputValue}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, lm := realModel(t, c.name)
			srv := NewRouter("server", inference.Vector, nil)
			defer srv.Close()
			srv.Swap(lm)
			hs := httptest.NewServer(srv.Handler())
			defer hs.Close()
			c.server.Name, c.server.Model = "test", c.name
			s, err := NewV2Client(hs.URL, &c.server, lm.Features, nil)
			if err != nil {
				t.Fatal(err)
			}
			if s.Task() != m.Task() || s.NumClasses() != m.NumClasses() || s.NumFeatures() != len(lm.Features) {
				t.Errorf("client says %s/%d/%d", s.Task(), s.NumClasses(), s.NumFeatures())
			}
			// Forwarded as a V2 request of all rows: one request to the
			// server, the same answers row by row.
			c := s.(*v2Client)
			front := NewRouter("site-1", inference.Vector, nil)
			defer front.Close()
			front.Swap(LoadedModel{Model: modelfleet.ModelRef{Name: "m", Version: "1"}, Format: modelfleet.FormatOIP, Features: lm.Features, Scorer: c, PredictRows: c.predictRows})
			before := testutil.ToFloat64(srv.lookup(c.server.Model).arms[0].m.ok)
			rec := do(front.Handler(), "POST", "/v2/models/m/infer", v2Body("FP64", rows...))
			if rec.Code != 200 {
				t.Fatalf("forwarded batch: %d %s", rec.Code, rec.Body)
			}
			if n := testutil.ToFloat64(srv.lookup(c.server.Model).arms[0].m.ok) - before; n != 1 {
				t.Errorf("the server answered %v requests for one batch", n)
			}
			_, out := decodeV2(t, rec.Body.Bytes())
			for i, row := range rows {
				want, _ := m.Predict(row)
				name := map[string]string{modelfleet.TaskBinary: "probability:FP64", modelfleet.TaskMulticlass: "label:INT64", modelfleet.TaskRegression: "value:FP64"}[c.server.Task]
				if len(out[name]) != len(rows) {
					t.Fatalf("output %s = %v", name, out[name])
				}
				got := out[name][i]
				if got != want {
					t.Errorf("batch row %d: %v, the model %v", i, got, want)
				}
				if c.server.Task == modelfleet.TaskMulticlass {
					probs, _ := m.Probabilities(row, nil)
					if got := out["probabilities:FP64"][i*3 : i*3+3]; fmt.Sprint(got) != fmt.Sprint(probs) {
						t.Errorf("batch row %d: probabilities %v, the model %v", i, got, probs)
					}
				}
			}
			for _, row := range rows {
				got, err := s.Predict(row)
				want, _ := m.Predict(row)
				if err != nil || got != want {
					t.Errorf("Predict = %v %v, the model %v", got, err, want)
				}
				if c.server.Task == modelfleet.TaskMulticlass {
					got, err := s.Probabilities(row, nil)
					want, _ := m.Probabilities(row, nil)
					if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
						t.Errorf("Probabilities = %v %v, the model %v", got, err, want)
					}
				}
			}
		})
	}
}

func TestV2ClientRefuses(t *testing.T) {
	_, lm := realModel(t, "regression")
	srv := NewRouter("server", inference.Vector, nil)
	defer srv.Close()
	srv.Swap(lm)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	srvRef := func(task, model string) *modelfleet.ModelServer {
		return &modelfleet.ModelServer{Name: "test", Model: model, Task: task}
	}
	if _, err := NewV2Client(hs.URL, srvRef(modelfleet.TaskRegression, "regression"), lm.Features[:3], nil); err == nil || !strings.Contains(err.Error(), "want one input of 3 columns") {
		t.Errorf("features that disagree with the server's inputs: %v", err)
	}
	if _, err := NewV2Client(hs.URL, srvRef(modelfleet.TaskRegression, "other"), lm.Features, nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a model the server does not have: %v", err)
	}
	// A regressor declared binary answers values that are no probability.
	s, err := NewV2Client(hs.URL, srvRef(modelfleet.TaskBinary, "regression"), lm.Features, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Predict([]float64{1, 2, 3, 4, 5}); err == nil || !strings.Contains(err.Error(), "not a probability") {
		t.Errorf("a value out of [0, 1] as a probability: %v", err)
	}
	// A server that went away is an error per request, not a panic.
	hs.Close()
	if _, err := s.Predict([]float64{1, 2, 3, 4, 5}); err == nil {
		t.Error("a request to a stopped server succeeded")
	}
}

// TestServedVersionNeedsAServerHost: a site that declares no model servers
// refuses a version that names one, and keeps serving what it serves.
func TestServedVersionNeedsAServerHost(t *testing.T) {
	a := openAgent(t, t.TempDir())
	defer a.Close()
	art := fakeArtifact(0, 1, 1, 1)
	mustDeploy(t, a, deployReq("m", "1", art), art)
	archive := []byte("not even an archive")
	req := deployReq("m", "2", archive)
	req.Format, req.Server = modelfleet.FormatOIP, &modelfleet.ModelServer{Name: "triton", Model: "m", Task: modelfleet.TaskBinary}
	f := &fetcher{data: archive}
	if _, err := a.Deploy(t.Context(), req, f.fetch); err == nil || !strings.Contains(err.Error(), "--oip-server triton=") {
		t.Errorf("deploy: %v, want the flag that declares the server", err)
	}
	if v := a.Traffic("m"); len(v) != 1 || v["1"] != 100 {
		t.Errorf("traffic = %v", v)
	}
	req.Server = nil
	if err := req.Validate(); err == nil {
		t.Error("format oip without a server validated")
	}
}

// TestV2ReadyAsksTheServer: a version backed by a model server is ready
// only while the server says its model is.
func TestV2ReadyAsksTheServer(t *testing.T) {
	_, lm := realModel(t, "binary")
	backend := NewRouter("server", inference.Vector, nil)
	defer backend.Close()
	backend.Swap(lm)
	hs := httptest.NewServer(backend.Handler())
	defer hs.Close()
	c, err := newV2Client(hs.URL, &modelfleet.ModelServer{Name: "test", Model: "binary", Task: modelfleet.TaskBinary}, lm.Features, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRouter("site-1", inference.Vector, nil)
	defer r.Close()
	r.Swap(LoadedModel{Model: modelfleet.ModelRef{Name: "m", Version: "1"}, Format: modelfleet.FormatOIP, Features: lm.Features, Scorer: c, Ready: c.ready})
	h := r.Handler()
	if rec := do(h, "GET", "/v2/models/m/ready", ""); rec.Code != 200 {
		t.Fatalf("ready: %d %s", rec.Code, rec.Body)
	}
	backend.Set("binary", nil) // the server no longer has the model
	if rec := do(h, "GET", "/v2/models/m/versions/1/ready", ""); rec.Code != 503 || !strings.Contains(rec.Body.String(), "not ready") {
		t.Errorf("ready while the server lacks the model: %d %s", rec.Code, rec.Body)
	}
}
