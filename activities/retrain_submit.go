// The retraining job: submit it to the model's compute, follow it (the
// polling fallback beside the gateway's run-status signal), cancel it.

package activities

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/modelfleet/modelfleet"
	"go.temporal.io/sdk/activity"
)

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
	defer keepAlive(ctx)()
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
	defer keepAlive(ctx)()
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
