// This file is the retraining job contract: what the retraining activities
// ask of a compute backend (package training implements it: a local
// subprocess, Azure ML command jobs) and where each model retrains.

package modelfleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Trainer submits training jobs and follows them. Implementations are safe for
// concurrent use, and every method is idempotent: Temporal retries the
// activities that call them.
type Trainer interface {
	// Submit starts job unless a job with the same ID was already
	// submitted, in which case it returns that job's reference and starts
	// nothing.
	Submit(ctx context.Context, job TrainingJob) (RunRef, error)
	// Status reports the run's current status.
	Status(ctx context.Context, ref RunRef) (JobStatus, error)
	// Cancel stops the run. Cancelling a finished or unknown run is not
	// an error.
	Cancel(ctx context.Context, ref RunRef) error
}

// TrainingOutputs is implemented by runners whose outputs the worker can read
// from a local folder: the folder holding the job's model.txt and
// metrics.json.
type TrainingOutputs interface {
	Outputs(ctx context.Context, ref RunRef) (dir string, err error)
}

// TrainingJob is one training run.
type TrainingJob struct {
	// ID names the job and makes Submit idempotent: an Azure ML job name
	// (letters, digits, '-' and '_', at most 255), also the local runner's
	// run folder.
	ID    string `json:"id"`
	Model string `json:"model"`
	// Command is a shell command line using DataPlaceholder and
	// OutputPlaceholder.
	Command string `json:"command"`
	// Data is the input folder: a local path for the local runner, an
	// Azure ML URI (azureml://datastores/<store>/paths/<path>/, https://...)
	// for Azure ML.
	Data string `json:"data"`
	// Output, for Azure ML, is where the model output goes
	// (azureml://datastores/<store>/paths/<path>/); empty: Azure ML's
	// default location for the job.
	Output string `json:"output,omitempty"`
	// Environment is the Azure ML environment (its ARM ID, or
	// azureml:<name>:<version>); Code the optional code asset. Azure ML only.
	Environment string `json:"environment,omitempty"`
	Code        string `json:"code,omitempty"`
	// Compute is the compute's kind (ComputeLocal, ...) and ComputeID its ARM
	// ID for Azure ML.
	Compute   string            `json:"compute"`
	ComputeID string            `json:"computeId,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Tags      map[string]string `json:"tags,omitempty"`
	// Timeout bounds the run where the backend can (Azure ML's job limit).
	Timeout time.Duration `json:"timeout,omitempty"`
}

// Validate checks what every backend needs.
func (j *TrainingJob) Validate() error {
	if !ValidJobID(j.ID) {
		return Errorf(EINVALID, "job id %q is invalid: use letters, digits, '-' and '_' (at most 255, starting with a letter or digit)", j.ID)
	}
	if err := ValidateName("model name", j.Model); err != nil {
		return err
	}
	if strings.TrimSpace(j.Command) == "" {
		return Errorf(EINVALID, "job %s: command is required", j.ID)
	}
	if j.Data == "" {
		return Errorf(EINVALID, "job %s: input data is required", j.ID)
	}
	return nil
}

// ValidJobID reports whether id can name a job on every backend.
func ValidJobID(id string) bool {
	if id == "" || len(id) > 255 {
		return false
	}
	for i, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

// RunRef identifies a submitted run. It is plain data: the workflow keeps it
// in its state and hands it back to Status and Cancel.
type RunRef struct {
	Kind  string `json:"kind"` // the compute kind that runs it
	ID    string `json:"id"`   // the job ID (Azure ML: the job name, also its run ID)
	Model string `json:"model"`
	// ComputeID is the Azure ML compute's ARM ID.
	ComputeID string `json:"computeId,omitempty"`
	// Dir is the local runner's run folder; OutputDir its output folder.
	Dir       string `json:"dir,omitempty"`
	OutputDir string `json:"outputDir,omitempty"`
	// OutputURI is where Azure ML writes the model output, if chosen.
	OutputURI string `json:"outputUri,omitempty"`
}

// Run statuses, in Azure ML's vocabulary (the local runner uses the same).
const (
	JobNotStarted = "NotStarted"
	JobQueued     = "Queued"
	JobRunning    = "Running"
	JobCompleted  = "Completed"
	JobFailed     = "Failed"
	JobCanceled   = "Canceled"
)

// JobStatus is a run's status.
type JobStatus struct {
	Status string `json:"status"`
	// Terminal is set for Completed, Failed and Canceled.
	Terminal bool `json:"terminal"`
	// Message says why a run failed, when the backend knows.
	Message string `json:"message,omitempty"`
	// Metrics are the job's metrics.json (local runner, once completed).
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// JobTerminal reports whether an Azure ML job status (any case) is final.
func JobTerminal(status string) bool {
	switch strings.ToLower(status) {
	case "completed", "failed", "canceled", "cancelled":
		return true
	}
	return false
}

// ThrottledError is returned when the backend refused a request as too
// frequent and said when to try again (HTTP 429 with Retry-After beyond
// what the client waits for by itself).
type ThrottledError struct {
	RetryAfter time.Duration
	Err        error
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("throttled (retry after %s): %v", e.RetryAfter, e.Err)
}

func (e *ThrottledError) Unwrap() error { return e.Err }

// ErrRunNotFound is wrapped when a run does not exist.
var ErrRunNotFound = errors.New("run not found")

// Compute kinds.
const (
	// ComputeLocal runs the command as a subprocess of the worker (the
	// embedded stack).
	ComputeLocal = "local"
	// ComputeAzureMLCloud submits an Azure ML command job to a compute
	// cluster in the cloud.
	ComputeAzureMLCloud = "azureml-cloud"
	// ComputeAzureMLEdge submits it to an Arc-connected Kubernetes compute
	// attached to the workspace: the data stays in the plant.
	ComputeAzureMLEdge = "azureml-edge"
	// ComputeExternal is not a policy anyone writes: it is what a model
	// without a policy gets. modelfleet submits nothing and waits for the
	// run status of a job someone else submitted (tagged RetrainRunTag).
	ComputeExternal = "external"
)

// ComputeKinds lists the kinds a policy may name.
var ComputeKinds = []string{ComputeLocal, ComputeAzureMLCloud, ComputeAzureMLEdge}

// computeIDRE is the ARM ID of an Azure ML workspace compute.
var computeIDRE = regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices/workspaces/[^/]+/computes/[A-Za-z0-9][A-Za-z0-9-]{1,31}$`)

// ComputePolicy says where a model retrains.
type ComputePolicy struct {
	Kind string `json:"kind" yaml:"kind"`
	// ComputeID is the ARM ID of the Azure ML compute
	// (/subscriptions/<sub>/resourceGroups/<rg>/providers/
	// Microsoft.MachineLearningServices/workspaces/<ws>/computes/<name>):
	// a compute cluster for azureml-cloud, the attached Arc Kubernetes
	// compute for azureml-edge. Not used by local.
	ComputeID string `json:"computeId,omitempty" yaml:"computeId,omitempty"`
}

// Validate checks the policy.
func (p ComputePolicy) Validate() error {
	switch p.Kind {
	case ComputeLocal:
		if p.ComputeID != "" {
			return Errorf(EINVALID, "compute %q takes no computeId (got %q)", p.Kind, p.ComputeID)
		}
	case ComputeAzureMLCloud, ComputeAzureMLEdge:
		if !computeIDRE.MatchString(p.ComputeID) {
			return Errorf(EINVALID,
				"compute %q: computeId %q is not an Azure ML compute ARM ID (/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/workspaces/<ws>/computes/<name>)",
				p.Kind, p.ComputeID)
		}
	case "":
		return Errorf(EINVALID, "compute kind is required: one of %s", strings.Join(ComputeKinds, ", "))
	default:
		return Errorf(EINVALID, "compute kind %q is not one of %s", p.Kind, strings.Join(ComputeKinds, ", "))
	}
	return nil
}

// ComputeName is the compute's name: the last segment of its ARM ID.
func (p ComputePolicy) ComputeName() string {
	return p.ComputeID[strings.LastIndex(p.ComputeID, "/")+1:]
}

// TrainingPolicy is how one model retrains: where, with what command, on which data.
type TrainingPolicy struct {
	Compute ComputePolicy `json:"compute" yaml:"compute"`
	// Command is the training command line (see the package doc).
	Command string `json:"command" yaml:"command"`
	// Data is the training data folder. Local: a path; empty means
	// <data dir>/<model>/train. Azure ML: an input URI, required.
	Data string `json:"data,omitempty" yaml:"data,omitempty"`
	// Holdout is a labelled CSV the worker reads to compare the challenger
	// with the champion; it must not be part of Data. Empty means
	// <data dir>/<model>/holdout.csv if it exists, else the champion's
	// declared validation set.
	Holdout string `json:"holdout,omitempty" yaml:"holdout,omitempty"`
	// Output, Environment and Code: Azure ML only (see TrainingJob).
	Output      string            `json:"output,omitempty" yaml:"output,omitempty"`
	Environment string            `json:"environment,omitempty" yaml:"environment,omitempty"`
	Code        string            `json:"code,omitempty" yaml:"code,omitempty"`
	Env         map[string]string `json:"env,omitempty" yaml:"env,omitempty"`
	// Timeout bounds one run where the backend enforces it (Azure ML's
	// job limit); the workflow's JobTimeout bounds it everywhere.
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
}

// Validate checks the policy.
func (p *TrainingPolicy) Validate() error {
	if err := p.Compute.Validate(); err != nil {
		return err
	}
	if strings.TrimSpace(p.Command) == "" {
		return Errorf(EINVALID, "command is required")
	}
	if p.Compute.Kind == ComputeLocal {
		return nil
	}
	if p.Environment == "" {
		return Errorf(EINVALID, "compute %q: environment is required (an Azure ML environment ID)", p.Compute.Kind)
	}
	for _, u := range []struct{ what, v string }{{"data", p.Data}, {"output", p.Output}} {
		if u.v == "" && u.what == "output" {
			continue
		}
		if !strings.HasPrefix(u.v, "azureml://") && !strings.HasPrefix(u.v, "https://") {
			return Errorf(EINVALID, "compute %q: %s %q must be an azureml:// or https:// URI", p.Compute.Kind, u.what, u.v)
		}
	}
	if p.Timeout < 0 {
		return Errorf(EINVALID, "timeout %s is negative", p.Timeout)
	}
	return nil
}

// TrainingPolicies holds every model's policy; Default, if set, applies to models
// without one of their own.
type TrainingPolicies struct {
	Default *TrainingPolicy           `json:"default,omitempty" yaml:"default,omitempty"`
	Models  map[string]TrainingPolicy `json:"models,omitempty" yaml:"models,omitempty"`
}

// For returns the model's policy; false if it has none (ComputeExternal).
func (ps TrainingPolicies) For(model string) (TrainingPolicy, bool) {
	if p, ok := ps.Models[model]; ok {
		return p, true
	}
	if ps.Default != nil {
		return *ps.Default, true
	}
	return TrainingPolicy{}, false
}

// Validate checks every policy; the error names the model.
func (ps TrainingPolicies) Validate() error {
	if ps.Default != nil {
		if err := ps.Default.Validate(); err != nil {
			return Errorf(EINVALID, "default retraining policy: %s", ErrorMessage(err))
		}
	}
	names := make([]string, 0, len(ps.Models))
	for m := range ps.Models {
		names = append(names, m)
	}
	slices.Sort(names)
	for _, m := range names {
		if err := ValidateName("model name", m); err != nil {
			return err
		}
		p := ps.Models[m]
		if err := p.Validate(); err != nil {
			return Errorf(EINVALID, "retraining policy of %s: %s", m, ErrorMessage(err))
		}
	}
	return nil
}

// Duration is a time.Duration written as a Go duration string ("6h").
type Duration time.Duration

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes "6h0m0s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// ReadJobMetrics reads the numbers of a metrics.json file (other values are
// skipped); a missing file is no metrics and no error.
func ReadJobMetrics(path string) (map[string]float64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", JobMetricsFile, err)
	}
	out := map[string]float64{}
	for k, v := range raw {
		if f, ok := v.(float64); ok {
			out[k] = f
		}
	}
	return out, nil
}

// What a training job writes into its output folder.
const (
	JobModelFile   = "model.txt"
	JobMetricsFile = "metrics.json"
)
