package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/registry"
	"github.com/modelfleet/modelfleet/training"
)

const model = "bearing-failure"

var example = filepath.Join("..", "examples", "bearing-failure")

// The example's trainer, built once for the tests that retrain for real.
var (
	trainerOnce sync.Once
	trainerBin  string
	trainerErr  error
	tmpRoot     string
)

func TestMain(m *testing.M) {
	var err error
	if tmpRoot, err = os.MkdirTemp("", "modelfleet-activities-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

func trainer(t *testing.T) string {
	t.Helper()
	trainerOnce.Do(func() {
		trainerBin = filepath.Join(tmpRoot, "train")
		out, err := exec.Command("go", "build", "-o", trainerBin, "../examples/bearing-failure/train").CombinedOutput()
		if err != nil {
			trainerErr = fmt.Errorf("build the example trainer: %v: %s", err, out)
		}
	})
	if trainerErr != nil {
		t.Skip(trainerErr)
	}
	return trainerBin
}

// harness is the embedded registry (its ModelRegistered events collected),
// a local runner and the Retraining activities over them.
type harness struct {
	a      *Retraining
	reg    *registry.Client
	runner *training.Local
	data   string
	mu     sync.Mutex
	events []string // subjects of the ModelRegistered events delivered
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var evs []registry.Event
		if err := json.NewDecoder(r.Body).Decode(&evs); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		for _, e := range evs {
			h.events = append(h.events, e.Subject)
		}
		h.mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	r, err := registry.Open(t.TempDir(), registry.Options{WebhookURL: hook.URL, RetryInitial: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(func() { srv.Close(); r.Close() })
	h.reg = &registry.Client{BaseURL: srv.URL}
	h.data = t.TempDir()
	h.runner = &training.Local{Root: filepath.Join(t.TempDir(), "runs"), Grace: time.Second}
	h.a = &Retraining{
		Registry: h.reg, Runners: map[string]modelfleet.Trainer{modelfleet.ComputeLocal: h.runner},
		Champions: StaticChampions{}, DataDir: h.data, PollInterval: 20 * time.Millisecond,
	}
	return h
}

// registerExample registers the committed example model as version v (its
// model card: auc >= 0.85 on validation.csv).
func (h *harness) registerExample(t *testing.T, v, artifact string) modelfleet.Model {
	t.Helper()
	m := modelfleet.Model{
		ModelRef: modelfleet.ModelRef{Name: model, Version: v}, Format: modelfleet.FormatLightGBM,
		Features:   []string{"vibration_rms_mm_s", "vibration_peak_g", "temperature_c", "speed_rpm", "load_pct", "bearing_age_h"},
		Tags:       map[string]string{"team": "reliability"},
		Validation: &modelfleet.ValidationSpec{Metric: modelfleet.MetricAUC, Threshold: 0.85},
	}
	out, _, err := h.reg.Register(context.Background(), m, artifact, filepath.Join(example, "validation.csv"))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// genData writes the model's training data and holdout: the example plant,
// drifted by drift.
func (h *harness) genData(t *testing.T, seed int, drift float64) {
	t.Helper()
	out, err := exec.Command(trainer(t), "-gen-data", filepath.Join(h.data, model), "-seed", fmt.Sprint(seed), "-drift", fmt.Sprint(drift)).CombinedOutput()
	if err != nil {
		t.Fatalf("gen data: %v: %s", err, out)
	}
}

func (h *harness) policy(t *testing.T) {
	h.a.Policies = modelfleet.TrainingPolicies{Models: map[string]modelfleet.TrainingPolicy{model: {
		Compute: modelfleet.ComputePolicy{Kind: modelfleet.ComputeLocal},
		Command: shellQuote(trainer(t)) + " -data ${{inputs.data}} -out ${{outputs.model}}",
	}}}
}

func (h *harness) subjects() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.events...)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// await runs AwaitRun until the run ends, as the workflow does.
func (h *harness) await(t *testing.T, ref RunRef) JobStatus {
	t.Helper()
	for range 100 {
		st, err := h.a.AwaitRun(context.Background(), AwaitRunRequest{Ref: ref, Window: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if st.Terminal {
			return st
		}
	}
	t.Fatal("run did not end")
	return JobStatus{}
}

// A retraining on drifted data: the local runner trains for real, the
// challenger beats the champion on the holdout and is registered as the
// next version, with why, validated on that holdout; ModelRegistered goes
// out once, however often the activities are retried.
func TestRetrainingWinnerIsRegistered(t *testing.T) {
	h := newHarness(t)
	champ := h.registerExample(t, "1", filepath.Join(example, "model.txt"))
	h.a.Champions = StaticChampions{model: "1"}
	h.genData(t, 11, 1)
	h.policy(t)
	ctx := context.Background()

	req := SubmitRequest{Model: model, JobID: "retrain-bf-abc-1", Cycle: 1, Why: "2 trigger(s) (dataset-drift x2) within the 2m0s debounce"}
	sub, err := h.a.SubmitRetraining(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Compute != modelfleet.ComputeLocal || sub.Ref.ID != req.JobID {
		t.Fatalf("submission = %+v", sub)
	}
	if again, err := h.a.SubmitRetraining(ctx, req); err != nil || again.Ref != sub.Ref {
		t.Fatalf("second submit = %+v, %v", again, err)
	}
	st := h.await(t, sub.Ref)
	if st.Status != modelfleet.JobCompleted || st.Metrics["rows"] != 8000 {
		t.Fatalf("run = %+v", st)
	}
	if b, _ := os.ReadFile(filepath.Join(sub.Ref.Dir, "train.log")); strings.Count(string(b), "starting job") != 1 {
		t.Errorf("the job started %d times", strings.Count(string(b), "starting job"))
	}

	cmp, err := h.a.EvaluateChallenger(ctx, EvaluateRequest{Model: model, Ref: sub.Ref, Margin: 0.005})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("comparison: %s", cmp.Reason)
	if !cmp.Passed || !cmp.Compared || cmp.Champion != "1" || cmp.Metric != modelfleet.MetricAUC || cmp.Rows != 2000 ||
		cmp.HoldoutPath != filepath.Join(h.data, model, "holdout.csv") || cmp.ChallengerValue-cmp.ChampionValue < 0.005 {
		t.Fatalf("comparison = %+v", cmp)
	}

	reg := RegisterRequest{Model: model, JobID: req.JobID, Cycle: 1, Why: req.Why, Ref: sub.Ref, Comparison: cmp}
	m, err := h.a.RegisterChallenger(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != "2" || m.Tags[TagRetrainJob] != req.JobID || m.Tags[TagRetrainedFrom] != "1" || m.Tags["team"] != "reliability" ||
		m.Properties[PropWhy] != req.Why || m.Properties[PropChampionValue] == "" || m.Properties[modelfleet.PropGateMargin] != "0.005" {
		t.Errorf("registered = %+v", m)
	}
	if m.Validation == nil || m.Validation.Threshold != champ.Validation.Threshold || m.Validation.DataDigest == champ.Validation.DataDigest {
		t.Errorf("validation = %+v: want the champion's threshold on the new holdout", m.Validation)
	}
	if again, err := h.a.RegisterChallenger(ctx, reg); err != nil || again.Version != "2" {
		t.Errorf("second register = %+v, %v; want version 2 again", again, err)
	}
	waitFor(t, func() bool { return len(h.subjects()) >= 2 })
	time.Sleep(50 * time.Millisecond)
	if got := h.subjects(); len(got) != 2 || got[1] != "models/"+model+":2" {
		t.Errorf("ModelRegistered events = %v, want v1 and v2 once each", got)
	}

	// The registered challenger now passes the release's gate as well.
	gate, err := h.a.CheckChampion(ctx, GateRequest{Model: m.ModelRef})
	if err != nil || !gate.Passed || !gate.Compared {
		t.Errorf("gate of the registered challenger = %+v, %v", gate, err)
	}
}

// On undrifted data the retrained model is no better than the champion:
// rejected, nothing registered.
func TestRetrainingLoserIsRejected(t *testing.T) {
	h := newHarness(t)
	h.registerExample(t, "1", filepath.Join(example, "model.txt"))
	h.a.Champions = StaticChampions{model: "1"}
	h.genData(t, 11, 0)
	h.policy(t)
	ctx := context.Background()
	sub, err := h.a.SubmitRetraining(ctx, SubmitRequest{Model: model, JobID: "retrain-bf-abc-2", Cycle: 2})
	if err != nil {
		t.Fatal(err)
	}
	if st := h.await(t, sub.Ref); st.Status != modelfleet.JobCompleted {
		t.Fatalf("run = %+v", st)
	}
	cmp, err := h.a.EvaluateChallenger(ctx, EvaluateRequest{Model: model, Ref: sub.Ref, Margin: 0.005})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("comparison: %s", cmp.Reason)
	if cmp.Passed || !cmp.Compared || !strings.Contains(cmp.Reason, "does not beat champion 1's") || !strings.Contains(cmp.Reason, "by 0.005") {
		t.Errorf("comparison = %+v, want rejected", cmp)
	}
}

func TestSubmitRetrainingChoosesByPolicy(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	// No policy: nothing submitted; the workflow waits for a job from elsewhere.
	sub, err := h.a.SubmitRetraining(ctx, SubmitRequest{Model: model, JobID: "j-1", Cycle: 1})
	if err != nil || sub.Compute != modelfleet.ComputeExternal || sub.Ref.ID != "" {
		t.Errorf("without a policy: %+v, %v", sub, err)
	}
	// A policy whose runner this worker lacks, and one without data: not retried.
	h.a.Policies = modelfleet.TrainingPolicies{Models: map[string]modelfleet.TrainingPolicy{
		model:   {Compute: modelfleet.ComputePolicy{Kind: modelfleet.ComputeAzureMLEdge, ComputeID: "/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/w/computes/arc"}, Command: "x"},
		"other": {Compute: modelfleet.ComputePolicy{Kind: modelfleet.ComputeLocal}, Command: "true"},
	}}
	for _, m := range []string{model, "other"} {
		_, err := h.a.SubmitRetraining(ctx, SubmitRequest{Model: m, JobID: "j-2", Cycle: 1})
		var ae *temporal.ApplicationError
		if !errors.As(err, &ae) || !ae.NonRetryable() {
			t.Errorf("%s: %v, want a non-retryable error", m, err)
		}
	}
	// Azure ML's throttling becomes a retry after its Retry-After.
	err = classify(&modelfleet.ThrottledError{RetryAfter: 2 * time.Minute, Err: errors.New("429")})
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.NonRetryable() || ae.NextRetryDelay() != 2*time.Minute {
		t.Errorf("throttled: %v", err)
	}
}

// AwaitRun's cancellation cancels the run; its own timeout does not (the
// activity is retried and the run goes on).
func TestAwaitRunCancellation(t *testing.T) {
	h := newHarness(t)
	if err := os.MkdirAll(filepath.Join(h.data, model, "train"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.data, model, "train", "a.csv"), []byte("label\n1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.a.Policies = modelfleet.TrainingPolicies{Default: &modelfleet.TrainingPolicy{Compute: modelfleet.ComputePolicy{Kind: modelfleet.ComputeLocal}, Command: "sleep 30"}}
	for _, c := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want string
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 150*time.Millisecond)
		}, modelfleet.JobRunning},
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(150*time.Millisecond, cancel)
			return ctx, cancel
		}, modelfleet.JobCanceled},
	} {
		sub, err := h.a.SubmitRetraining(context.Background(), SubmitRequest{Model: model, JobID: "sleep-" + c.name, Cycle: 1})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := c.ctx()
		_, err = h.a.AwaitRun(ctx, AwaitRunRequest{Ref: sub.Ref, Window: time.Minute})
		cancel()
		if err == nil {
			t.Errorf("%s: AwaitRun returned no error", c.name)
		}
		waitFor(t, func() bool {
			st, _ := h.runner.Status(context.Background(), sub.Ref)
			return st.Status == c.want
		})
		_ = h.a.CancelRun(context.Background(), CancelRequest{Model: model, Ref: sub.Ref})
	}
	// CancelRun with only the job ID (the submission's outcome unknown)
	// resolves the runner by policy; an unknown run is not an error.
	if err := h.a.CancelRun(context.Background(), CancelRequest{Model: model, Ref: RunRef{ID: "never-submitted"}}); err != nil {
		t.Error(err)
	}
}

// In a real activity environment AwaitRun heartbeats each status it reads.
func TestAwaitRunHeartbeats(t *testing.T) {
	h := newHarness(t)
	if err := os.MkdirAll(filepath.Join(h.data, model, "train"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.data, model, "train", "a.csv"), []byte("label\n1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.a.Policies = modelfleet.TrainingPolicies{Default: &modelfleet.TrainingPolicy{Compute: modelfleet.ComputePolicy{Kind: modelfleet.ComputeLocal}, Command: "sleep 0.3; echo m > ${{outputs.model}}/model.txt"}}
	sub, err := h.a.SubmitRetraining(context.Background(), SubmitRequest{Model: model, JobID: "hb", Cycle: 1})
	if err != nil {
		t.Fatal(err)
	}
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(h.a)
	var mu sync.Mutex
	var beats []string
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
		var st JobStatus
		_ = details.Get(&st)
		mu.Lock()
		beats = append(beats, st.Status)
		mu.Unlock()
	})
	v, err := env.ExecuteActivity(h.a.AwaitRun, AwaitRunRequest{Ref: sub.Ref, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var st JobStatus
	if err := v.Get(&st); err != nil || st.Status != modelfleet.JobCompleted {
		t.Fatalf("AwaitRun = %+v, %v", st, err)
	}
	mu.Lock()
	defer mu.Unlock()
	// The SDK batches heartbeats: at least the first reaches the server.
	if len(beats) == 0 || beats[0] != modelfleet.JobRunning {
		t.Errorf("heartbeats = %v, want the first one running", beats)
	}
}

// The gate of any registered version: no champion, the champion itself, an
// equal model (passes at margin 0, not at 0.01), a worse one.
func TestCheckChampion(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.registerExample(t, "1", filepath.Join(example, "model.txt"))
	gate := func(v string, margin float64) modelfleet.Comparison {
		t.Helper()
		c, err := h.a.CheckChampion(ctx, GateRequest{Model: modelfleet.ModelRef{Name: model, Version: v}, Margin: margin})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := gate("1", 0); !c.Passed || c.Compared || !strings.Contains(c.Reason, "no champion") {
		t.Errorf("no champion: %+v", c)
	}
	h.a.Champions = StaticChampions{model: "1"}
	if c := gate("1", 0); !c.Passed || c.Reason != "this version is the champion" {
		t.Errorf("the champion itself: %+v", c)
	}
	h.registerExample(t, "2", filepath.Join(example, "model.txt"))
	if c := gate("2", 0); !c.Passed || !c.Compared || c.ChallengerValue != c.ChampionValue || c.Rows != 2000 {
		t.Errorf("equal model at margin 0: %+v", c)
	}
	if c := gate("2", 0.01); c.Passed || !strings.Contains(c.Reason, "does not beat champion 1's 0.9246 by 0.01") {
		t.Errorf("equal model at margin 0.01: %+v", c)
	}
	// A weak model: trained on 240 rows.
	dir := t.TempDir()
	bin := trainer(t)
	for _, args := range [][]string{{"-gen-data", dir, "-rows", "300"}, {"-data", filepath.Join(dir, "train"), "-out", dir}} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	h.registerExample(t, "3", filepath.Join(dir, "model.txt"))
	c := gate("3", 0)
	t.Logf("weak model: %s", c.Reason)
	if c.Passed || !c.Compared || c.ChallengerValue >= c.ChampionValue || c.Holdout != "the version's validation set" {
		t.Errorf("weak model: %+v", c)
	}
	// A version that does not load fails the gate (a result, not an error).
	garbage := filepath.Join(t.TempDir(), "model.txt")
	if err := os.WriteFile(garbage, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.registerExample(t, "4", garbage)
	if c := gate("4", 0); c.Passed || !strings.Contains(c.Reason, "does not load") {
		t.Errorf("garbage: %+v", c)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10s")
}
