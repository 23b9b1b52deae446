package activities

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.temporal.io/sdk/activity"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
)

// RunRef and RunStatus are training's, named here so workflows need not
// import the training backends.
type (
	RunRef    = modelfleet.RunRef
	JobStatus = modelfleet.JobStatus
)

// Defaults of the retraining activities.
const (
	DefaultPollInterval = 15 * time.Second
	DefaultAwaitWindow  = 10 * time.Minute
)

// Tags and properties of a registered challenger: why it exists.
const (
	TagRetrainJob     = "modelfleet.retrain.job"     // the training job's ID (idempotency key)
	TagRetrainRun     = "modelfleet.retrain.run"     // the run ID
	TagRetrainCompute = "modelfleet.retrain.compute" // local, azureml-cloud, azureml-edge
	TagRetrainedFrom  = "modelfleet.retrained-from"  // the champion version
	PropWhy           = "modelfleet.retrain.why"     // what triggered the retraining
	PropCycle         = "modelfleet.retrain.cycle"
	PropMetric        = "modelfleet.gate.metric"
	PropChampion      = "modelfleet.gate.champion"        // champion version
	PropChampionValue = "modelfleet.gate.championValue"   // champion's metric on the holdout
	PropChallenger    = "modelfleet.gate.challengerValue" // the challenger's
	PropHoldout       = "modelfleet.gate.holdout"
	PropHoldoutRows   = "modelfleet.gate.holdoutRows"
	PropGate          = "modelfleet.gate.result"
)

// Retraining holds what the retraining activities and the champion gate
// use. The cloud worker registers one instance (besides Cloud); its
// exported methods are all activities.
type Retraining struct {
	// Policies says where and how each model retrains; a model without
	// one gets compute "external": modelfleet submits nothing and waits
	// for a job tagged modelfleet.retrain=<model> submitted by others.
	Policies modelfleet.TrainingPolicies
	// Runners by compute kind (modelfleet.ComputeLocal, KindAzureMLCloud,
	// KindAzureMLEdge); both Azure kinds may share one *training.AzureML.
	Runners   map[string]modelfleet.Trainer
	Registry  modelfleet.RetrainRegistry
	Champions modelfleet.Champions
	// DataDir holds local training data: <DataDir>/<model>/train/ (the
	// job's input, CSV files) and <DataDir>/<model>/holdout.csv (never
	// given to the job; the challenger and the champion are compared on
	// it). A policy's Data and Holdout override them.
	DataDir string
	// PollInterval is how often AwaitRun reads a run's status (default
	// DefaultPollInterval) when the request does not say.
	PollInterval time.Duration
	// MaxArtifactBytes bounds a model or data set read into memory
	// (default DefaultMaxArtifactBytes).
	MaxArtifactBytes int64
}

// SubmitRequest asks for one retraining run.
type SubmitRequest struct {
	Model string `json:"model"`
	// JobID is the run's idempotency key, chosen by the workflow.
	JobID string `json:"jobId"`
	Cycle int    `json:"cycle"`
	Why   string `json:"why,omitempty"`
}

// Submission is where the run went.
type Submission struct {
	// Compute is the kind the policy chose, or modelfleet.ComputeExternal when
	// the model has no policy (Ref is then empty).
	Compute   string `json:"compute"`
	ComputeID string `json:"computeId,omitempty"`
	Ref       RunRef `json:"ref"`
	Note      string `json:"note,omitempty"`
}

// SubmitRetraining chooses the compute by the model's policy and submits
// the training job; submitting the same JobID again finds the first run.
func (a *Retraining) SubmitRetraining(ctx context.Context, req SubmitRequest) (Submission, error) {
	if err := modelfleet.ValidateName("model name", req.Model); err != nil {
		return Submission{}, nonRetryable(err)
	}
	p, ok := a.Policies.For(req.Model)
	if !ok {
		return Submission{Compute: modelfleet.ComputeExternal,
			Note: fmt.Sprintf("no retraining policy for %s: waiting for a job submitted elsewhere and tagged %s=%s", req.Model, modelfleet.RetrainRunTag, req.Model)}, nil
	}
	runner, err := a.runner(p.Compute.Kind)
	if err != nil {
		return Submission{}, err
	}
	job := modelfleet.TrainingJob{
		ID: req.JobID, Model: req.Model, Command: p.Command, Output: p.Output, Environment: p.Environment, Code: p.Code,
		Compute: p.Compute.Kind, ComputeID: p.Compute.ComputeID, Env: p.Env, Timeout: p.Timeout.Std(),
		Tags: map[string]string{"modelfleet.job": req.JobID, "modelfleet.cycle": strconv.Itoa(req.Cycle), "modelfleet.why": clip(req.Why, 250)},
	}
	if job.Data, err = a.trainingData(req.Model, p); err != nil {
		return Submission{}, err
	}
	ref, err := runner.Submit(ctx, job)
	if err != nil {
		return Submission{}, classify(fmt.Errorf("submit %s to %s: %w", req.JobID, p.Compute.Kind, err))
	}
	logger(ctx).Info("retraining submitted", "model", req.Model, "job", req.JobID, "compute", p.Compute.Kind)
	return Submission{Compute: p.Compute.Kind, ComputeID: p.Compute.ComputeID, Ref: ref}, nil
}

// trainingData is the job's input folder: the policy's, else the model's
// local train/ folder, which must hold CSV files.
func (a *Retraining) trainingData(model string, p modelfleet.TrainingPolicy) (string, error) {
	if p.Compute.Kind != modelfleet.ComputeLocal {
		return p.Data, nil
	}
	dir := p.Data
	if dir == "" {
		if a.DataDir == "" {
			return "", nonRetryable(modelfleet.Errorf(modelfleet.EINVALID, "no training data for %s: the worker has no retraining data folder and the policy names none", model))
		}
		dir = filepath.Join(a.DataDir, model, "train")
	}
	csvs, _ := filepath.Glob(filepath.Join(dir, "*.csv"))
	if len(csvs) == 0 {
		return "", nonRetryable(modelfleet.Errorf(modelfleet.EINVALID, "no training data for %s: put labelled CSV files in %s", model, dir))
	}
	return dir, nil
}

// AwaitRunRequest asks AwaitRun to follow one run.
type AwaitRunRequest struct {
	Ref RunRef `json:"ref"`
	// Poll is the interval between status reads; Window how long this
	// call follows the run before it returns a non-terminal status (the
	// workflow calls again). Zero: the defaults.
	Poll   time.Duration `json:"poll,omitempty"`
	Window time.Duration `json:"window,omitempty"`
}

// AwaitRun is the polling fallback beside the gateway's run-status signal:
// it reads the run's status every Poll, heartbeating each, and returns the
// first terminal status, or the last one after Window. Cancelling the
// activity cancels the run unless it already ended: that is how the
// workflow stops a run that timed out.
func (a *Retraining) AwaitRun(ctx context.Context, req AwaitRunRequest) (JobStatus, error) {
	runner, err := a.runner(req.Ref.Kind)
	if err != nil {
		return JobStatus{}, err
	}
	poll := firstPositive(req.Poll, a.PollInterval, DefaultPollInterval)
	deadline := time.Now().Add(firstPositive(req.Window, DefaultAwaitWindow))
	for {
		st, err := runner.Status(ctx, req.Ref)
		if ctx.Err() != nil {
			return st, a.abandon(ctx, runner, req.Ref)
		}
		if err != nil {
			return st, classify(fmt.Errorf("status of run %s: %w", req.Ref.ID, err))
		}
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, st)
		}
		if st.Terminal || !time.Now().Before(deadline) {
			return st, nil
		}
		t := time.NewTimer(min(poll, time.Until(deadline)+time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return st, a.abandon(ctx, runner, req.Ref)
		case <-t.C:
		}
	}
}

// abandon runs when AwaitRun's context ends: a cancellation (the workflow
// gave up on the run) cancels the run unless it already ended; a deadline
// (this attempt timed out; Temporal retries it) leaves the run alone.
func (a *Retraining) abandon(ctx context.Context, runner modelfleet.Trainer, ref RunRef) error {
	if !errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if st, err := runner.Status(cctx, ref); err == nil && st.Terminal {
		return ctx.Err()
	}
	if err := runner.Cancel(cctx, ref); err != nil {
		return fmt.Errorf("cancel run %s: %w", ref.ID, err)
	}
	return ctx.Err()
}

// CancelRequest names the run to cancel. A Ref without Kind (the
// submission's outcome is unknown) is resolved by the model's policy.
type CancelRequest struct {
	Model string `json:"model"`
	Ref   RunRef `json:"ref"`
}

// CancelRun cancels a run; a finished or unknown run is left alone.
func (a *Retraining) CancelRun(ctx context.Context, req CancelRequest) error {
	ref := req.Ref
	if ref.Kind == "" {
		p, ok := a.Policies.For(req.Model)
		if !ok {
			return nil // nothing of ours to cancel
		}
		ref.Kind, ref.Model, ref.ComputeID = p.Compute.Kind, req.Model, p.Compute.ComputeID
	}
	if ref.Kind == modelfleet.ComputeExternal || ref.ID == "" {
		return nil
	}
	runner, err := a.runner(ref.Kind)
	if err != nil {
		return err
	}
	if err := runner.Cancel(ctx, ref); err != nil {
		return classify(fmt.Errorf("cancel run %s: %w", ref.ID, err))
	}
	logger(ctx).Info("retraining run cancelled", "model", req.Model, "run", ref.ID)
	return nil
}

// EvaluateRequest compares a retraining run's output with the champion.
type EvaluateRequest struct {
	Model  string  `json:"model"`
	Ref    RunRef  `json:"ref"`
	Margin float64 `json:"margin"`
}

// EvaluateChallenger scores the run's model.txt and the champion on the
// holdout set: the policy's Holdout, else <DataDir>/<model>/holdout.csv,
// else the champion's declared validation set. A challenger that does not
// load, or no data to judge it on, is a failed comparison (a result, not
// an error); a model with no champion yet passes.
func (a *Retraining) EvaluateChallenger(ctx context.Context, req EvaluateRequest) (modelfleet.Comparison, error) {
	c := modelfleet.Comparison{Model: req.Model, Challenger: "run " + req.Ref.ID, Margin: req.Margin}
	fetcher, ok := a.Runners[req.Ref.Kind].(modelfleet.TrainingOutputs)
	if !ok {
		return c, nonRetryable(modelfleet.Errorf(modelfleet.EINVALID,
			"the outputs of %s runs cannot be read by the worker yet: register the model from the job output in Azure ML instead", req.Ref.Kind))
	}
	dir, err := fetcher.Outputs(ctx, req.Ref)
	if err != nil {
		return c, classify(fmt.Errorf("outputs of run %s: %w", req.Ref.ID, err))
	}
	challenger, err := readLimited(filepath.Join(dir, modelfleet.JobModelFile), a.limit())
	if err != nil {
		return c, nonRetryable(fmt.Errorf("run %s output: %w", req.Ref.ID, err))
	}
	c.ChallengerMetrics, _ = modelfleet.ReadJobMetrics(filepath.Join(dir, modelfleet.JobMetricsFile))
	champ, err := a.champion(ctx, req.Model)
	if err != nil {
		return c, err
	}
	p, _ := a.Policies.For(req.Model)
	data, err := a.holdout(ctx, &c, req.Model, p.Holdout, champ, nil)
	if err != nil {
		return c, err
	}
	if data == nil {
		c.Reason = fmt.Sprintf("no labelled holdout data to judge the challenger on: put one at %s", filepath.Join(a.DataDir, req.Model, "holdout.csv"))
		return c, nil
	}
	var declared []string
	metric := modelfleet.MetricAUC
	if champ != nil {
		declared = champ.Features
		if champ.Validation != nil {
			metric = champ.Validation.Metric
		}
	}
	return a.compare(ctx, c, challenger, declared, champ, metric, data), nil
}

// GateRequest asks whether a registered version may roll out.
type GateRequest struct {
	Model  modelfleet.ModelRef `json:"model"`
	Margin float64             `json:"margin"`
}

// CheckChampion is the champion/challenger gate of a release: the
// registered version against the champion, on the version's declared
// validation set (else the champion's), with the version's declared metric
// (else the champion's). Without a champion, or without labelled data, it
// passes uncompared, saying so.
func (a *Retraining) CheckChampion(ctx context.Context, req GateRequest) (modelfleet.Comparison, error) {
	c := modelfleet.Comparison{Model: req.Model.Name, Challenger: req.Model.Version, Margin: req.Margin}
	if err := req.Model.Validate(); err != nil {
		return c, nonRetryable(err)
	}
	champ, err := a.champion(ctx, req.Model.Name)
	if err != nil {
		return c, err
	}
	switch {
	case champ == nil:
		c.Passed, c.Reason = true, "no champion yet: nothing to beat"
		return c, nil
	case champ.Version == req.Model.Version:
		c.Champion = champ.Version
		c.Passed, c.Reason = true, "this version is the champion"
		return c, nil
	}
	m, err := a.Registry.Get(ctx, req.Model.Name, req.Model.Version)
	if err != nil {
		return c, classify(fmt.Errorf("gate %s: %w", req.Model, err))
	}
	artifact, err := a.download(ctx, m.ArtifactURL, m.Digest)
	if err != nil {
		return c, fmt.Errorf("gate %s: artifact: %w", req.Model, err)
	}
	data, err := a.holdout(ctx, &c, req.Model.Name, "", champ, m.Validation)
	if err != nil {
		return c, err
	}
	if data == nil {
		c.Champion = champ.Version
		c.Passed, c.Reason = true, fmt.Sprintf("neither this version nor the champion %s declares labelled validation data: not compared", champ.Version)
		return c, nil
	}
	metric := modelfleet.MetricAUC
	switch {
	case m.Validation != nil:
		metric = m.Validation.Metric
	case champ.Validation != nil:
		metric = champ.Validation.Metric
	}
	declared := m.Features
	if len(declared) == 0 {
		declared = champ.Features
	}
	return a.compare(ctx, c, artifact, declared, champ, metric, data), nil
}

// compare scores both models on data and decides.
func (a *Retraining) compare(ctx context.Context, c modelfleet.Comparison, challenger []byte, declared []string, champ *modelfleet.Model, metric string, data []byte) modelfleet.Comparison {
	c.Metric = metric
	cm, err := inference.Load(modelfleet.FormatLightGBM, challenger)
	if err != nil {
		c.Reason = "the challenger does not load: " + modelfleet.ErrorMessage(err)
		return c
	}
	c.Features = featuresOf(cm, declared)
	var rows int
	c.ChallengerValue, rows, err = score(cm, c.Features, data, metric)
	if err != nil {
		c.Reason = "the challenger cannot be scored on the holdout data: " + modelfleet.ErrorMessage(err)
		return c
	}
	c.Rows = rows
	if champ == nil {
		c.Passed, c.Reason = true, fmt.Sprintf("no champion yet: nothing to beat (challenger %s %.4f on %d rows)", metric, c.ChallengerValue, rows)
		return c
	}
	c.Champion = champ.Version
	art, err := a.download(ctx, champ.ArtifactURL, champ.Digest)
	if err != nil {
		c.Reason = "the champion's artifact cannot be read: " + err.Error()
		return c
	}
	chm, err := inference.Load(champ.Format, art)
	if err != nil {
		c.Passed, c.Reason = true, fmt.Sprintf("the champion %s does not load (%s): not compared", champ.Version, modelfleet.ErrorMessage(err))
		return c
	}
	if c.ChampionValue, _, err = score(chm, featuresOf(chm, champ.Features), data, metric); err != nil {
		c.Passed, c.Reason = true, fmt.Sprintf("the champion %s cannot be scored on this data (%s): not compared", champ.Version, modelfleet.ErrorMessage(err))
		return c
	}
	c.Compared = true
	diff := c.ChallengerValue - c.ChampionValue
	c.Passed = diff >= c.Margin-1e-9
	switch {
	case c.Passed && c.Margin > 0:
		c.Reason = fmt.Sprintf("challenger %s %.4f beats champion %s's %.4f by %.4f (margin %g) on %d rows", metric, c.ChallengerValue, champ.Version, c.ChampionValue, diff, c.Margin, rows)
	case c.Passed:
		c.Reason = fmt.Sprintf("challenger %s %.4f is no worse than champion %s's %.4f (difference %+.4f, margin 0) on %d rows", metric, c.ChallengerValue, champ.Version, c.ChampionValue, diff, rows)
	case c.Margin > 0:
		c.Reason = fmt.Sprintf("challenger %s %.4f does not beat champion %s's %.4f by %g (difference %+.4f, %d rows)", metric, c.ChallengerValue, champ.Version, c.ChampionValue, c.Margin, diff, rows)
	default:
		c.Reason = fmt.Sprintf("challenger %s %.4f is worse than champion %s's %.4f (difference %+.4f, %d rows)", metric, c.ChallengerValue, champ.Version, c.ChampionValue, diff, rows)
	}
	return c
}

// holdout finds the labelled data to compare on, records where it came
// from in c, and returns it (nil: none). Order: the policy's holdout file,
// <DataDir>/<model>/holdout.csv, the challenger's declared validation set
// (gate only), the champion's.
func (a *Retraining) holdout(ctx context.Context, c *modelfleet.Comparison, model, policyPath string, champ *modelfleet.Model, own *modelfleet.ValidationSpec) ([]byte, error) {
	path := policyPath
	if path == "" && own == nil && a.DataDir != "" {
		if p := filepath.Join(a.DataDir, model, "holdout.csv"); fileExists(p) {
			path = p
		}
	}
	if path != "" {
		b, err := readLimited(path, a.limit())
		if err != nil {
			return nil, nonRetryable(fmt.Errorf("holdout data: %w", err))
		}
		c.Holdout, c.HoldoutPath = path, path
		return b, nil
	}
	spec, whose := own, "the version's validation set"
	if spec == nil && champ != nil && champ.Validation != nil {
		spec, whose = champ.Validation, "champion "+champ.Version+"'s validation set"
	}
	if spec == nil {
		return nil, nil
	}
	b, err := a.download(ctx, spec.DataURL, spec.DataDigest)
	if err != nil {
		return nil, fmt.Errorf("holdout data (%s): %w", whose, err)
	}
	c.Holdout, c.HoldoutURL, c.HoldoutDigest = whose, spec.DataURL, spec.DataDigest
	return b, nil
}

// RegisterRequest registers a retraining's winning challenger.
type RegisterRequest struct {
	Model      string                `json:"model"`
	JobID      string                `json:"jobId"`
	Cycle      int                   `json:"cycle"`
	Why        string                `json:"why,omitempty"`
	Ref        RunRef                `json:"ref"`
	Comparison modelfleet.Comparison `json:"comparison"`
}

// RegisterChallenger registers the run's model as the model's next version
// (highest numeric version + 1), validated on the holdout it won on, with
// tags and properties recording why: the triggers, the run, the champion's
// and the challenger's metric, the margin. The registry then emits
// ModelRegistered and a normal release starts. A second call for the same
// job returns the version the first one registered.
func (a *Retraining) RegisterChallenger(ctx context.Context, req RegisterRequest) (modelfleet.Model, error) {
	all, err := a.Registry.List(ctx)
	if err != nil {
		return modelfleet.Model{}, fmt.Errorf("register %s: list versions: %w", req.Model, err)
	}
	next := 0
	for _, m := range all {
		if m.Name != req.Model {
			continue
		}
		if m.Tags[TagRetrainJob] == req.JobID {
			return m, nil // registered by an earlier attempt
		}
		if n, err := strconv.Atoi(m.Version); err == nil && n > next {
			next = n
		}
	}
	fetcher, ok := a.Runners[req.Ref.Kind].(modelfleet.TrainingOutputs)
	if !ok {
		return modelfleet.Model{}, nonRetryable(modelfleet.Errorf(modelfleet.EINVALID, "the outputs of %s runs cannot be read by the worker", req.Ref.Kind))
	}
	dir, err := fetcher.Outputs(ctx, req.Ref)
	if err != nil {
		return modelfleet.Model{}, classify(err)
	}
	cmp := req.Comparison
	m := modelfleet.Model{
		ModelRef: modelfleet.ModelRef{Name: req.Model, Version: strconv.Itoa(next + 1)},
		Format:   modelfleet.FormatLightGBM, Features: cmp.Features,
		Tags: map[string]string{}, Properties: map[string]string{
			PropWhy: clip(req.Why, 1000), PropCycle: strconv.Itoa(req.Cycle), PropMetric: cmp.Metric,
			PropChallenger: fmtMetric(cmp.ChallengerValue), modelfleet.PropGateMargin: strconv.FormatFloat(cmp.Margin, 'g', -1, 64),
			PropHoldout: cmp.Holdout, PropHoldoutRows: strconv.Itoa(cmp.Rows), PropGate: clip(cmp.Reason, 1000),
		},
	}
	threshold := 0.0
	if cmp.Champion != "" {
		champ, err := a.Registry.Get(ctx, req.Model, cmp.Champion)
		if err != nil {
			return modelfleet.Model{}, classify(fmt.Errorf("register %s: champion %s: %w", req.Model, cmp.Champion, err))
		}
		for k, v := range champ.Tags { // the model's own tags (team, asset) carry over
			m.Tags[k] = v
		}
		if champ.Validation != nil && champ.Validation.Metric == cmp.Metric {
			threshold = champ.Validation.Threshold
		}
		m.Tags[TagRetrainedFrom] = cmp.Champion
		m.Properties[PropChampion] = cmp.Champion
		m.Properties[PropChampionValue] = fmtMetric(cmp.ChampionValue)
	}
	m.Tags[TagRetrainJob], m.Tags[TagRetrainRun], m.Tags[TagRetrainCompute] = req.JobID, req.Ref.ID, req.Ref.Kind
	validation := cmp.HoldoutPath
	if validation == "" && cmp.HoldoutDigest != "" {
		f, err := os.CreateTemp("", "modelfleet-holdout-*.csv")
		if err != nil {
			return modelfleet.Model{}, err
		}
		defer os.Remove(f.Name())
		_, err = a.Registry.Download(ctx, cmp.HoldoutURL, cmp.HoldoutDigest, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return modelfleet.Model{}, fmt.Errorf("register %s: holdout data: %w", req.Model, err)
		}
		validation = f.Name()
	}
	if validation != "" && cmp.Metric != "" {
		m.Validation = &modelfleet.ValidationSpec{Metric: cmp.Metric, Threshold: threshold}
	} else {
		validation = ""
	}
	out, _, err := a.Registry.Register(ctx, m, filepath.Join(dir, modelfleet.JobModelFile), validation)
	if err != nil {
		// A version taken meanwhile (ECONFLICT) is retried: the next
		// attempt lists again and takes the one after.
		return modelfleet.Model{}, classify(fmt.Errorf("register %s: %w", m.ModelRef, err))
	}
	logger(ctx).Info("challenger registered", "model", out.ModelRef.String(), "job", req.JobID, "reason", cmp.Reason)
	return out, nil
}

func (a *Retraining) champion(ctx context.Context, model string) (*modelfleet.Model, error) {
	if a.Champions == nil {
		return nil, nil
	}
	v, err := a.Champions.Champion(ctx, model)
	if err != nil {
		return nil, fmt.Errorf("find the champion of %s: %w", model, err)
	}
	if v == "" {
		return nil, nil
	}
	m, err := a.Registry.Get(ctx, model, v)
	if err != nil {
		return nil, classify(fmt.Errorf("champion %s:%s: %w", model, v, err))
	}
	return &m, nil
}

func (a *Retraining) runner(kind string) (modelfleet.Trainer, error) {
	r, ok := a.Runners[kind]
	if !ok || r == nil {
		return nil, nonRetryable(modelfleet.Errorf(modelfleet.EINVALID, "no training runner for compute %q is configured on this worker", kind))
	}
	return r, nil
}

func (a *Retraining) limit() int64 {
	if a.MaxArtifactBytes > 0 {
		return a.MaxArtifactBytes
	}
	return DefaultMaxArtifactBytes
}

func (a *Retraining) download(ctx context.Context, url, digest string) ([]byte, error) {
	buf := limitedBuffer{limit: a.limit()}
	if _, err := a.Registry.Download(ctx, url, digest, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// score evaluates m on the CSV data, rows ordered by features.
func score(m *inference.Model, features []string, data []byte, metric string) (float64, int, error) {
	ds, err := inference.ReadCSV(bytes.NewReader(data), features)
	if err != nil {
		return 0, 0, err
	}
	v, err := inference.Evaluate(m, ds, metric)
	return v, len(ds.Y), err
}

// featuresOf is the column order to feed m: the declared features when they
// fit the model, else the names stored in the file.
func featuresOf(m *inference.Model, declared []string) []string {
	if len(declared) == m.NumFeatures() {
		return declared
	}
	return m.FeatureNames()
}

// classify turns errors that retrying cannot fix into non-retryable
// activity errors, and throttling into a retry after the service's delay.
func classify(err error) error {
	var te *modelfleet.ThrottledError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &te):
		return temporal.NewApplicationErrorWithOptions(err.Error(), "Throttled", temporal.ApplicationErrorOptions{NextRetryDelay: te.RetryAfter, Cause: err})
	case errors.Is(err, modelfleet.ErrRunNotFound):
		return temporal.NewNonRetryableApplicationError(err.Error(), "RunNotFound", err)
	}
	switch modelfleet.ErrorCode(err) {
	case modelfleet.EINVALID, modelfleet.EUNAUTHORIZED, modelfleet.ENOTFOUND:
		return nonRetryable(err)
	}
	return err
}

// logger is the activity's logger, or a silent one outside an activity
// (tests call the methods directly).
func logger(ctx context.Context) tlog.Logger {
	if activity.IsActivity(ctx) {
		return activity.GetLogger(ctx)
	}
	return tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func nonRetryable(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", err)
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

func firstPositive(ds ...time.Duration) time.Duration {
	for _, d := range ds {
		if d > 0 {
			return d
		}
	}
	return 0
}

func fmtMetric(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'f', 6, 64)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// StaticChampions names each model's champion version outright: for tests,
// and for a deployment that records its production versions elsewhere.
// The control plane's is its orchestrator (orchestrator.Temporal.Champion).
type StaticChampions map[string]string

// Champion returns the named version, "" for none.
func (s StaticChampions) Champion(_ context.Context, model string) (string, error) {
	return s[model], nil
}
