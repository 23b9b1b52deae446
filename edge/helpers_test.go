package edge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// fakeScorer stands in for a model: sigmoid(bias + Σ w_i·atan(x_i)). The atan
// keeps it finite for any finite input, which FuzzScore relies on.
type fakeScorer struct {
	bias    float64
	weights []float64
}

func (s *fakeScorer) NumFeatures() int { return len(s.weights) }
func (s *fakeScorer) Task() string     { return modelfleet.TaskBinary }
func (s *fakeScorer) NumClasses() int  { return 2 }
func (s *fakeScorer) Probabilities(x, dst []float64) ([]float64, error) {
	p, err := s.Predict(x)
	return append(dst, p), err
}

func (s *fakeScorer) Predict(x []float64) (float64, error) {
	if len(x) != len(s.weights) {
		return 0, fmt.Errorf("got %d features, want %d", len(x), len(s.weights))
	}
	z := s.bias
	for i, w := range s.weights {
		z += w * math.Atan(x[i])
	}
	return 1 / (1 + math.Exp(-z)), nil
}

// fakeArtifact is the fake model file format: "linear <bias> <w1> <w2> ...".
func fakeArtifact(bias float64, weights ...float64) []byte {
	parts := []string{"linear", strconv.FormatFloat(bias, 'g', -1, 64)}
	for _, w := range weights {
		parts = append(parts, strconv.FormatFloat(w, 'g', -1, 64))
	}
	return []byte(strings.Join(parts, " ") + "\n")
}

func fakeLoad(format string, data []byte) (Scorer, error) {
	if format != modelfleet.FormatLightGBM {
		return nil, fmt.Errorf("format %q is not supported", format)
	}
	f := strings.Fields(string(data))
	if len(f) < 2 || f[0] != "linear" {
		return nil, fmt.Errorf("not a linear model")
	}
	nums := make([]float64, len(f)-1)
	for i, s := range f[1:] {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("weight %d: %w", i, err)
		}
		nums[i] = v
	}
	return &fakeScorer{bias: nums[0], weights: nums[1:]}, nil
}

// fakeVector reads a JSON object of numbers, as inference.Vector will.
func fakeVector(features []string, body []byte) ([]float64, error) {
	var m map[string]float64
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("features must be a JSON object of numbers: %v", err)
	}
	x := make([]float64, len(features))
	for i, f := range features {
		v, ok := m[f]
		if !ok {
			return nil, fmt.Errorf("feature %q is missing", f)
		}
		x[i] = v
	}
	return x, nil
}

var testFeatures = []string{"temp", "vibration", "rpm"}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func deployReq(name, version string, artifact []byte) DeployRequest {
	return DeployRequest{
		Model:       modelfleet.ModelRef{Name: name, Version: version},
		Digest:      digestOf(artifact),
		Format:      modelfleet.FormatLightGBM,
		ArtifactURL: "https://example.invalid/" + name + "/" + version,
		Features:    testFeatures,
	}
}

// fetcher serves data and counts calls.
type fetcher struct {
	data  []byte
	calls atomic.Int32
}

func (f *fetcher) fetch(_ context.Context, w io.Writer) error {
	f.calls.Add(1)
	_, err := w.Write(f.data)
	return err
}

// noFetch fails the test if a download is attempted.
func noFetch(t *testing.T) FetchFunc {
	return func(context.Context, io.Writer) error {
		t.Errorf("unexpected fetch")
		return fmt.Errorf("unexpected fetch")
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func openAgent(t *testing.T, dir string) *Agent {
	t.Helper()
	a, err := Open(dir, Config{SiteID: "site-1", Loader: fakeLoad, Vectorizer: fakeVector, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustDeploy(t *testing.T, a *Agent, req DeployRequest, data []byte) DeployResult {
	t.Helper()
	f := &fetcher{data: data}
	res, err := a.Deploy(context.Background(), req, f.fetch)
	if err != nil {
		t.Fatalf("deploy %s: %v", req.Model, err)
	}
	return res
}

func do(h http.Handler, method, path, body string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// errorBody decodes a JSON error response.
func errorBody(t *testing.T, rec *httptest.ResponseRecorder) (code, msg string) {
	t.Helper()
	var e struct{ Error, Message string }
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", rec.Body.String(), err)
	}
	return e.Error, e.Message
}
