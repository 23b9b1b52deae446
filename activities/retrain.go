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

// score evaluates m on the CSV data, rows ordered by features, labels read
// as m's task has them.
func score(m *inference.Model, features []string, data []byte, metric string) (float64, int, error) {
	ds, err := inference.ReadLabelled(bytes.NewReader(data), features, m.Task())
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
	case modelfleet.EINVALID, modelfleet.EUNAUTHORIZED, modelfleet.EFORBIDDEN, modelfleet.ENOTFOUND:
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
