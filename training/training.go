// Package training submits and follows model training jobs: the retraining
// workflow's compute. One interface, Runner, has a backend per kind of
// compute: Local runs the training command as a subprocess (the embedded
// stack), AzureML submits an Azure Machine Learning command job to a cloud
// compute cluster or to an Arc-connected Kubernetes compute in the plant.
// Which one a model uses is its Policy.
//
// Every backend keeps the same job contract: the command reads labelled CSV
// files from its input folder and writes model.txt (and, optionally,
// metrics.json) into its output folder. The command names them with Azure
// ML's own placeholders, ${{inputs.data}} and ${{outputs.model}}, so one
// command line works on every backend; the local runner substitutes paths
// and also sets MODELFLEET_TRAINING_DATA and MODELFLEET_TRAINING_OUTPUT.
package training

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/modelfleet/modelfleet"
)

// Runner submits training jobs and follows them. Implementations are safe for
// concurrent use, and every method is idempotent: Temporal retries the
// activities that call them.
type Runner interface {
	// Submit starts job unless a job with the same ID was already
	// submitted, in which case it returns that job's reference and starts
	// nothing.
	Submit(ctx context.Context, job Job) (RunRef, error)
	// Status reports the run's current status.
	Status(ctx context.Context, ref RunRef) (RunStatus, error)
	// Cancel stops the run. Cancelling a finished or unknown run is not
	// an error.
	Cancel(ctx context.Context, ref RunRef) error
}

// OutputFetcher is implemented by runners whose outputs the worker can read
// from a local folder: the folder holding the job's model.txt and
// metrics.json.
type OutputFetcher interface {
	Outputs(ctx context.Context, ref RunRef) (dir string, err error)
}

// The job contract's names.
const (
	// InputData is the name of the job's input folder of labelled CSVs.
	InputData = "data"
	// OutputModel is the name of the job's output folder.
	OutputModel = "model"
	// DataPlaceholder and OutputPlaceholder are replaced by the input and
	// output folders in a command (Azure ML's syntax, which Azure ML
	// itself substitutes).
	DataPlaceholder   = "${{inputs." + InputData + "}}"
	OutputPlaceholder = "${{outputs." + OutputModel + "}}"
	// EnvData, EnvOutput and EnvJob are set for the local runner's
	// commands too.
	EnvData   = "MODELFLEET_TRAINING_DATA"
	EnvOutput = "MODELFLEET_TRAINING_OUTPUT"
	EnvJob    = "MODELFLEET_TRAINING_JOB"
	// ModelFile and MetricsFile are what a job writes into its output.
	ModelFile   = "model.txt"
	MetricsFile = "metrics.json"
)

// RetrainTag is the Azure ML run tag every retraining job carries, with the
// model name as value; the gateway routes the job's RunStatusChanged and
// RunCompleted events to the model's retraining workflow by it. It equals
// workflows.RetrainRunTag (a test checks).
const RetrainTag = "modelfleet.retrain"

// Job is one training run.
type Job struct {
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
	// Compute is the compute's kind (KindLocal, ...) and ComputeID its ARM
	// ID for Azure ML.
	Compute   string            `json:"compute"`
	ComputeID string            `json:"computeId,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Tags      map[string]string `json:"tags,omitempty"`
	// Timeout bounds the run where the backend can (Azure ML's job limit).
	Timeout time.Duration `json:"timeout,omitempty"`
}

// Validate checks what every backend needs.
func (j *Job) Validate() error {
	if !ValidJobID(j.ID) {
		return modelfleet.Errorf(modelfleet.EINVALID, "job id %q is invalid: use letters, digits, '-' and '_' (at most 255, starting with a letter or digit)", j.ID)
	}
	if err := modelfleet.ValidateName("model name", j.Model); err != nil {
		return err
	}
	if strings.TrimSpace(j.Command) == "" {
		return modelfleet.Errorf(modelfleet.EINVALID, "job %s: command is required", j.ID)
	}
	if j.Data == "" {
		return modelfleet.Errorf(modelfleet.EINVALID, "job %s: input data is required", j.ID)
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
	StatusNotStarted = "NotStarted"
	StatusQueued     = "Queued"
	StatusRunning    = "Running"
	StatusCompleted  = "Completed"
	StatusFailed     = "Failed"
	StatusCanceled   = "Canceled"
)

// RunStatus is a run's status.
type RunStatus struct {
	Status string `json:"status"`
	// Terminal is set for Completed, Failed and Canceled.
	Terminal bool `json:"terminal"`
	// Message says why a run failed, when the backend knows.
	Message string `json:"message,omitempty"`
	// Metrics are the job's metrics.json (local runner, once completed).
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// Terminal reports whether an Azure ML job status (any case) is final.
func Terminal(status string) bool {
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

// ErrNotFound is wrapped when a run does not exist.
var ErrNotFound = errors.New("run not found")
