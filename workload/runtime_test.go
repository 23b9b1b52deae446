package workload

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/workload/spec"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRuntimeBadDataIsDeadLettered sends good and bad messages through a
// real broker: every bad one lands on the dead-letter topic with its reason,
// the good ones are decided, and the runtime keeps going.
func TestRuntimeBadDataIsDeadLettered(t *testing.T) {
	b := startBroker(t)
	c := collect(t, b.URL(), "factory/s1/#")
	rt, err := New(Config{Site: "s1", Program: testProgram("1", 2), Broker: b.URL(), Scorer: fakeScorer("7")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	pub := publisher(t, b.URL())
	now := time.Now()
	topic := "factory/s1/m1/telemetry"
	bad := map[string][]byte{
		ReasonMalformed:    []byte(`{"machine":"m1","x":`),
		ReasonMissingField: []byte(`{"machine":"m1","ts":"` + now.Format(time.RFC3339) + `"}`),
		ReasonBadField:     []byte(`{"machine":"m1","ts":"` + now.Format(time.RFC3339) + `","x":"high"}`),
		ReasonOutOfRange:   sample("m1", 1, 101, now),
		ReasonClockSkew:    sample("m1", 2, 5, now.Add(-2*time.Minute)),
		ReasonPrepare:      sample("m1", 3, 13, now), // the preparer panics on 13
	}
	for _, p := range bad {
		publish(t, pub, topic, p)
	}
	publish(t, pub, topic, []byte{0xff, 0xfe}) // not UTF-8: base64 in the dead letter
	for i := range 4 {
		publish(t, pub, topic, sample("m1", int64(10+i), 60, time.Now()))
	}
	c.waitFor(t, len(bad)+1+4, 30*time.Second, "factory/s1/decisions", "factory/s1/deadletter")

	got := map[string][]DeadLetter{}
	for _, p := range c.all("factory/s1/deadletter") {
		var dl DeadLetter
		if err := json.Unmarshal(p, &dl); err != nil {
			t.Fatal(err)
		}
		if dl.Message == "" || dl.Topic != topic || dl.Workload != "line" || dl.WorkloadVersion != "1" {
			t.Errorf("dead letter %+v lacks its context", dl)
		}
		got[dl.Reason] = append(got[dl.Reason], dl)
	}
	for reason, payload := range bad {
		dls := got[reason]
		if len(dls) == 0 || dls[0].Payload != string(payload) {
			t.Errorf("%s: dead letters %+v, want one with payload %q", reason, dls, payload)
		}
	}
	if dls := got[ReasonMalformed]; len(dls) != 2 || dls[1].PayloadEncoding != "base64" || dls[1].Payload != "//4=" {
		t.Errorf("malformed dead letters %+v", dls)
	}

	var actions []string
	for _, p := range c.all("factory/s1/decisions") {
		var d Decision
		if err := json.Unmarshal(p, &d); err != nil {
			t.Fatal(err)
		}
		actions = append(actions, d.Action)
		if d.Action == ActionAlert && (d.Prediction == nil || *d.Prediction != 0.8 || d.ModelVersion != "7" || d.Features["f"] != 120) {
			t.Errorf("decision %+v", d)
		}
	}
	// window 2: the first good sample warms, the next three are scored
	if strings.Join(actions, ",") != "warming,alert,alert,alert" {
		t.Errorf("actions %v", actions)
	}
	// The last outcome can reach the collector before its counters move.
	for deadline := time.Now().Add(5 * time.Second); rt.Health().Processed < 11 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	h := rt.Health()
	if !h.Healthy || !h.Connected || h.Processed != 11 || h.DeadLettered != 7 {
		t.Errorf("health %+v", h)
	}
	if n := testutil.ToFloat64(rt.cfg.Metrics.deadLetters.WithLabelValues("line", "1", ReasonClockSkew)); n != 1 {
		t.Errorf("clock skew counter %v", n)
	}
	if n := testutil.ToFloat64(rt.cfg.Metrics.messages.WithLabelValues("line", "1", OutcomeDecided)); n != 3 {
		t.Errorf("decided counter %v", n)
	}
	if rec := rt.cfg.Record.Recent(10); len(rec) != 4 || rec[0].Action != ActionAlert {
		t.Errorf("record %+v", rec)
	}
	srv := httptest.NewServer(rt.Handler())
	defer srv.Close()
	for path, want := range map[string]int{"/healthz": 200, "/decisions?limit=2": 200, "/metrics": 200, "/decisions?limit=x": 400} {
		resp, err := http.Get(srv.URL + path)
		if err != nil || resp.StatusCode != want {
			t.Errorf("GET %s = %v, %v; want %d", path, resp.StatusCode, err, want)
		}
		resp.Body.Close()
	}
}

// TestRuntimeScoreFailure: a router that fails dead-letters after retries
// and does not stop the stream; one that refuses the row, at once.
func TestRuntimeScoreFailure(t *testing.T) {
	b := startBroker(t)
	c := collect(t, b.URL(), "factory/s1/deadletter")
	var calls atomic.Int32
	scorer := ScoreFunc(func(_ context.Context, _, machine string, _ []string, _ []float64) (Prediction, error) {
		calls.Add(1)
		if machine == "refused" {
			return Prediction{}, &ScoreError{Status: 400, Permanent: true, Message: `unknown feature "f"`}
		}
		return Prediction{}, errors.New("router down")
	})
	rt, err := New(Config{Site: "s1", Program: testProgram("1", 1), Broker: b.URL(), Scorer: scorer})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	pub := publisher(t, b.URL())
	publish(t, pub, "factory/s1/refused/telemetry", sample("refused", 1, 5, time.Now()))
	publish(t, pub, "factory/s1/m1/telemetry", sample("m1", 1, 5, time.Now()))
	c.waitFor(t, 2, 30*time.Second, "factory/s1/deadletter")
	reasons := map[string]bool{}
	for _, p := range c.all("factory/s1/deadletter") {
		var dl DeadLetter
		_ = json.Unmarshal(p, &dl)
		reasons[dl.Reason] = true
	}
	if !reasons[ReasonScoreRejected] || !reasons[ReasonScoreFailed] || calls.Load() != 1+scoreAttempts {
		t.Errorf("reasons %v, calls %d", reasons, calls.Load())
	}
}

func TestFeatureOutOfRange(t *testing.T) {
	b := startBroker(t)
	c := collect(t, b.URL(), "factory/s1/deadletter")
	p := testProgram("1", 1)
	p.NewPreparer = func(*spec.Manifest, string) Preparer {
		return prepFunc(func(_ *Sample, out []float64) { out[0] = 1e9 })
	}
	rt, err := New(Config{Site: "s1", Program: p, Broker: b.URL(), Scorer: fakeScorer("1")})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	publish(t, publisher(t, b.URL()), "factory/s1/m1/telemetry", sample("m1", 1, 5, time.Now()))
	c.waitFor(t, 1, 30*time.Second, "factory/s1/deadletter")
	var dl DeadLetter
	_ = json.Unmarshal(c.all("factory/s1/deadletter")[0], &dl)
	if dl.Reason != ReasonFeatureRange || !strings.Contains(dl.Message, `feature "f"`) {
		t.Errorf("dead letter %+v", dl)
	}
}

// A feature the manifest declares long must be a whole number: 1.5 is
// dead-lettered, not scored.
func TestFeatureOfItsType(t *testing.T) {
	b := startBroker(t)
	c := collect(t, b.URL(), "factory/s1/deadletter")
	p := testProgram("1", 1)
	p.Manifest.Features[0].Type = modelfleet.FeatureLong
	p.NewPreparer = func(*spec.Manifest, string) Preparer {
		return prepFunc(func(_ *Sample, out []float64) { out[0] = 1.5 })
	}
	rt, err := New(Config{Site: "s1", Program: p, Broker: b.URL(), Scorer: fakeScorer("1")})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	publish(t, publisher(t, b.URL()), "factory/s1/m1/telemetry", sample("m1", 1, 5, time.Now()))
	c.waitFor(t, 1, 30*time.Second, "factory/s1/deadletter")
	var dl DeadLetter
	_ = json.Unmarshal(c.all("factory/s1/deadletter")[0], &dl)
	if dl.Reason != ReasonFeatureRange || !strings.Contains(dl.Message, `feature "f" = 1.5 is not a long value`) {
		t.Errorf("dead letter %+v", dl)
	}
}

type prepFunc func(*Sample, []float64)

func (f prepFunc) Prepare(s *Sample, out []float64) (bool, error) { f(s, out); return true, nil }
