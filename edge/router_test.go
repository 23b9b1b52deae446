package edge

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

// newTestRouter serves "bearing-failure" version 1 with the fake scorer.
func newTestRouter(t testing.TB, keys ...string) (*Router, http.Handler) {
	r := NewRouter("site-1", fakeVector, nil)
	r.Keys = keys
	r.Swap(LoadedModel{
		Model:    modelfleet.ModelRef{Name: "bearing-failure", Version: "1"},
		Digest:   digestOf([]byte("v1")),
		Format:   modelfleet.FormatLightGBM,
		Features: testFeatures,
		Scorer:   &fakeScorer{bias: 0, weights: []float64{1, 1, 1}},
		LoadedAt: time.Now(),
	})
	return r, r.Handler()
}

func TestScore(t *testing.T) {
	_, h := newTestRouter(t)
	rec := do(h, "POST", "/score/bearing-failure", goodRow)
	if rec.Code != 200 {
		t.Fatalf("status = %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type = %q", ct)
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := 1 / (1 + math.Exp(-(math.Atan(1) + math.Atan(2) + math.Atan(3))))
	if got["model"] != "bearing-failure" || got["version"] != "1" || got["site"] != "site-1" ||
		math.Abs(got["prediction"].(float64)-want) > 1e-12 || got["label"] != 1.0 {
		t.Errorf("response = %v, want prediction %v label 1", got, want)
	}
	rec = do(h, "POST", "/score/bearing-failure", `{"temp":-9,"vibration":-9,"rpm":-9}`)
	if !strings.Contains(rec.Body.String(), `"label":0`) {
		t.Errorf("low score response = %s, want label 0", rec.Body)
	}
}

func TestRouterStatusCodes(t *testing.T) {
	_, h := newTestRouter(t)
	_, authed := newTestRouter(t, "k1", "secret-key")
	empty := NewRouter("site-1", fakeVector, nil).Handler()
	big := `{"temp":1,"vibration":2,"rpm":3,"pad":"` + strings.Repeat("x", MaxScoreBody) + `"}`
	cases := []struct {
		name         string
		h            http.Handler
		method, path string
		body         string
		header       []string
		status       int
		code         string // JSON error code, "" for success
		msgHas       string
	}{
		{"score", h, "POST", "/score/bearing-failure", goodRow, nil, 200, "", ""},
		{"bad json", h, "POST", "/score/bearing-failure", `{"temp":`, nil, 400, "invalid", "JSON object of numbers"},
		{"missing feature", h, "POST", "/score/bearing-failure", `{"temp":1}`, nil, 400, "invalid", `feature "vibration" is missing`},
		{"too large", h, "POST", "/score/bearing-failure", big, nil, 413, "too_large", "65536"},
		{"unknown model", h, "POST", "/score/pump-wear", goodRow, nil, 404, "not_found", `"pump-wear" is not served at site "site-1"; served: "bearing-failure"`},
		{"wrong method", h, "GET", "/score/bearing-failure", "", nil, 405, "method_not_allowed", "POST"},
		{"no key", authed, "POST", "/score/bearing-failure", goodRow, nil, 401, "unauthorized", "Bearer"},
		{"wrong key", authed, "POST", "/score/bearing-failure", goodRow, []string{"Authorization", "Bearer secret-kez"}, 401, "unauthorized", ""},
		{"not bearer", authed, "POST", "/score/bearing-failure", goodRow, []string{"Authorization", "Basic secret-key"}, 401, "unauthorized", ""},
		{"no key, unknown model", authed, "POST", "/score/pump-wear", goodRow, nil, 401, "unauthorized", ""},
		{"right key", authed, "POST", "/score/bearing-failure", goodRow, []string{"Authorization", "Bearer secret-key"}, 200, "", ""},
		{"second key", authed, "POST", "/score/bearing-failure", goodRow, []string{"Authorization", "bearer k1"}, 200, "", ""},
		{"healthz", h, "GET", "/healthz", "", nil, 200, "", ""},
		{"healthz empty", empty, "GET", "/healthz", "", nil, 200, "", ""},
		{"readyz", h, "GET", "/readyz", "", nil, 200, "", ""},
		{"readyz empty", empty, "GET", "/readyz", "", nil, 503, "not_ready", "no model is loaded"},
		{"models", h, "GET", "/api/models", "", nil, 200, "", ""},
		{"post healthz", h, "POST", "/healthz", "", nil, 405, "method_not_allowed", "GET"},
		{"no route", h, "GET", "/nope", "", nil, 404, "not_found", "/nope"},
		{"score no model", h, "POST", "/score/", goodRow, nil, 404, "not_found", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := do(c.h, c.method, c.path, c.body, c.header...)
			if rec.Code != c.status {
				t.Fatalf("status = %d %s, want %d", rec.Code, rec.Body, c.status)
			}
			if c.code == "" {
				return
			}
			code, msg := errorBody(t, rec)
			if code != c.code || !strings.Contains(msg, c.msgHas) {
				t.Errorf("error = %q %q, want %q containing %q", code, msg, c.code, c.msgHas)
			}
			if strings.Contains(msg, "secret") {
				t.Errorf("error message %q echoes the key", msg)
			}
		})
	}
}

func TestAPIModels(t *testing.T) {
	_, h := newTestRouter(t)
	var got []modelfleet.ServedModel
	if err := json.Unmarshal(do(h, "GET", "/api/models", "").Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "bearing-failure" || got[0].Version != "1" || !modelfleet.ValidDigest(got[0].Digest) || got[0].LoadedAt == "" {
		t.Errorf("models = %+v", got)
	}
	if body := do(NewRouter("s", fakeVector, nil).Handler(), "GET", "/api/models", "").Body.String(); strings.TrimSpace(body) != "[]" {
		t.Errorf("models of an empty router = %s, want []", body)
	}
}

func TestMetrics(t *testing.T) {
	_, h := newTestRouter(t)
	do(h, "POST", "/score/bearing-failure", goodRow)
	do(h, "POST", "/score/bearing-failure", goodRow)
	do(h, "POST", "/score/bearing-failure", `{}`)
	do(h, "POST", "/score/made-up", goodRow)
	rec := do(h, "GET", "/metrics", "")
	if rec.Code != 200 {
		t.Fatalf("metrics = %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`modelfleet_edge_score_requests_total{model="bearing-failure",outcome="ok",site="site-1",version="1"} 2`,
		`modelfleet_edge_score_requests_total{model="bearing-failure",outcome="invalid",site="site-1",version="1"} 1`,
		`modelfleet_edge_score_requests_total{model="(unknown)",outcome="not_found",site="site-1",version=""} 1`,
		`modelfleet_edge_score_duration_seconds_count{model="bearing-failure",site="site-1",version="1"} 3`,
		`modelfleet_edge_prediction_count{model="bearing-failure",site="site-1",version="1"} 2`,
		`modelfleet_edge_models_loaded{site="site-1"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, "made-up") {
		t.Error("metrics label an unknown model by its requested name")
	}
}

// TestSwapDuringScoring swaps versions while requests are in flight: every
// request must succeed, and its prediction must be the one of the version it
// reports (a request never sees half of one version and half of another).
func TestSwapDuringScoring(t *testing.T) {
	r, h := newTestRouter(t)
	versions := map[string]*fakeScorer{
		"1": {bias: 0, weights: []float64{1, 1, 1}},
		"2": {bias: 0, weights: []float64{-1, -1, -1}},
	}
	want := map[string]float64{}
	for v, s := range versions {
		want[v], _ = s.Predict([]float64{1, 2, 3})
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var seen sync.Map // version -> true
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				rec := do(h, "POST", "/score/bearing-failure", goodRow)
				if rec.Code != 200 {
					t.Errorf("status during swap = %d %s", rec.Code, rec.Body)
					return
				}
				var got scoreResponse
				json.Unmarshal(rec.Body.Bytes(), &got)
				if w, ok := want[got.Version]; !ok || got.Prediction != w {
					t.Errorf("version %q answered %v, want %v", got.Version, got.Prediction, w)
					return
				}
				seen.Store(got.Version, true)
			}
		})
	}
	for i := range 100 {
		v := fmt.Sprint(i%2 + 1)
		r.Swap(LoadedModel{
			Model:    modelfleet.ModelRef{Name: "bearing-failure", Version: v},
			Digest:   digestOf([]byte(v)),
			Features: testFeatures,
			Scorer:   versions[v],
			LoadedAt: time.Now(),
		})
		time.Sleep(100 * time.Microsecond)
	}
	stop.Store(true)
	wg.Wait()
	for v := range versions {
		if _, ok := seen.Load(v); !ok {
			t.Errorf("no request was answered by version %s during the swaps", v)
		}
	}
}

// badScorer misbehaves the ways a runtime might.
type badScorer struct{ p float64 }

func (s badScorer) NumFeatures() int { return 3 }
func (s badScorer) Task() string     { return modelfleet.TaskBinary }
func (s badScorer) NumClasses() int  { return 2 }
func (s badScorer) Probabilities(x, dst []float64) ([]float64, error) {
	p, err := s.Predict(x)
	return append(dst, p), err
}
func (s badScorer) Predict([]float64) (float64, error) {
	if s.p < 0 {
		panic("boom")
	}
	return s.p, nil
}

func TestScorerFailuresAre500(t *testing.T) {
	for name, s := range map[string]Scorer{
		"nan":        badScorer{math.NaN()},
		"panic":      badScorer{-1},
		"wrong size": &fakeScorer{weights: []float64{1, 1}},
	} {
		t.Run(name, func(t *testing.T) {
			r := NewRouter("site-1", fakeVector, testLogger(t))
			r.Swap(LoadedModel{Model: modelfleet.ModelRef{Name: "m", Version: "1"}, Features: testFeatures, Scorer: s})
			rec := do(r.Handler(), "POST", "/score/m", goodRow)
			if code, _ := errorBody(t, rec); rec.Code != 500 || code != "internal" {
				t.Errorf("status = %d %s, want 500 internal", rec.Code, rec.Body)
			}
		})
	}
}

func FuzzScore(f *testing.F) {
	for _, seed := range []string{
		goodRow, ``, `{}`, `null`, `[]`, `{"temp":1e308,"vibration":-1e308,"rpm":0}`,
		`{"temp":"hot","vibration":2,"rpm":3}`, `{"temp":1,"vibration":2,"rpm":3,"extra":4}`,
		`{"temp":1e999}`, "\x00\xff",
	} {
		f.Add([]byte(seed))
	}
	_, h := newTestRouter(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := do(h, "POST", "/score/bearing-failure", string(body))
		switch rec.Code {
		case 200:
			var r scoreResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || r.Prediction < 0 || r.Prediction > 1 {
				t.Fatalf("200 with body %s", rec.Body)
			}
		case 400, 413:
			errorBody(t, rec)
		default:
			t.Fatalf("status %d %s for body %q", rec.Code, rec.Body, body)
		}
	})
}

// TestScoreFirstIsTheMux: the score requests scoreFirst takes from the mux
// are answered exactly as the mux answers them, and every other request
// is the mux's: same status, headers and body, for paths the mux would
// clean, redirect, unescape or not route at all.
func TestScoreFirstIsTheMux(t *testing.T) {
	paths := []string{"/score/bearing-failure", "/score/bearing-failure/", "/score/", "/score", "/score/nope",
		"/score/bearing%2Dfailure", "/score/a%2Fb", "/score/a%20b", "/score/./bearing-failure", "/score/..",
		"/score/.", "//score/bearing-failure", "/score//bearing-failure", "/score/bearing-failure?x=1",
		"/Score/bearing-failure", "/score/bearing-failure/x", "/healthz", "/api/models"}
	for _, keys := range [][]string{nil, {"k"}} {
		r, h := newTestRouter(t, keys...)
		if _, ok := h.(scoreFirst); !ok {
			t.Fatalf("Handler is a %T, want scoreFirst", h)
		}
		mux := r.mux()
		for _, path := range paths {
			for _, method := range []string{"POST", "GET"} {
				for _, hdr := range [][]string{nil, {"Authorization", "Bearer k"}, {HeaderRouteKey, "line-3", "Authorization", "Bearer k"},
					{HeaderVersion, "1", "Authorization", "Bearer k"}, {HeaderVersion, "9", "Authorization", "Bearer k"}} {
					fast := do(h, method, path, goodRow, hdr...)
					slow := do(mux, method, path, goodRow, hdr...)
					if fast.Code != slow.Code || fast.Body.String() != slow.Body.String() || fmt.Sprint(fast.Header()) != fmt.Sprint(slow.Header()) {
						t.Errorf("keys %v, %s %s %v: scoreFirst %d %v %s, the mux %d %v %s", keys, method, path, hdr,
							fast.Code, fast.Header(), fast.Body, slow.Code, slow.Header(), slow.Body)
					}
				}
			}
		}
		r.Close()
	}
	took := 0
	for _, path := range paths {
		if _, ok := scorePath(httptest.NewRequest("POST", path, nil).URL); ok {
			took++
		}
	}
	if took < 3 {
		t.Errorf("scoreFirst took %d of the paths, want the plain score paths", took)
	}
}
