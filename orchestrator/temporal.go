// Package orchestrator is the one package that talks to Temporal for the
// rest of the control plane: Temporal implements modelfleet.Orchestrator
// (the workflow ID-reuse policies, the search attributes set at start, the
// visibility queries and their decoding live here and nowhere else), and
// orchestratortest holds an in-memory fake for the tests of its callers.
// The workflows themselves (package workflows) use only the search
// attribute keys from here.
package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/modelfleet/modelfleet"
)

// Defaults of Temporal.
const (
	// DefaultStatusTimeout bounds a release's status query: a release no
	// worker answers for falls back to DescribeWorkflowExecution.
	DefaultStatusTimeout = 5 * time.Second
	// DefaultMaxScan bounds how many succeeded releases of one model
	// Champion reads.
	DefaultMaxScan = 1000
)

// Temporal is the Orchestrator on a Temporal client.
type Temporal struct {
	Client client.Client
	// StatusTimeout bounds the status query of ReleaseStatus (default
	// DefaultStatusTimeout).
	StatusTimeout time.Duration
	// MaxScan bounds how many releases of one model Champion reads
	// (default DefaultMaxScan).
	MaxScan int
	// ControlKeys, if set, are the keys whose signed control statements
	// the releases it starts accept (ReleaseInput.ControlKeys): the
	// gateway's current key and, during a rotation, the old ones. They
	// replace whatever keys the caller's input names. Nil: the input's
	// keys are passed as they are (none: unsigned controls are accepted).
	ControlKeys []modelfleet.TrustedKey
}

var _ modelfleet.Orchestrator = (*Temporal)(nil)

// New returns the Orchestrator on c, with the defaults.
func New(c client.Client) *Temporal { return &Temporal{Client: c} }

// controlKeys are the keys a release starts with: t.ControlKeys if set,
// else the caller's.
func (t *Temporal) controlKeys(given []modelfleet.TrustedKey) []modelfleet.TrustedKey {
	if len(t.ControlKeys) > 0 {
		return slices.Clone(t.ControlKeys)
	}
	return given
}

// StartRelease implements modelfleet.Orchestrator. The workflow ID is
// derived from the model reference, and the policies make a redelivered
// event harmless: a running release is reused (USE_EXISTING), a closed one
// is not run again (REJECT_DUPLICATE), which Temporal reports as
// WorkflowExecutionAlreadyStarted: ECONFLICT.
func (t *Temporal) StartRelease(ctx context.Context, in modelfleet.ReleaseInput) (modelfleet.Run, error) {
	if err := in.Model.Validate(); err != nil {
		return modelfleet.Run{}, err
	}
	in.Resume = nil
	in.ControlKeys = t.controlKeys(in.ControlKeys)
	opts := client.StartWorkflowOptions{
		ID:                       modelfleet.ReleaseWorkflowID(in.Model),
		TaskQueue:                modelfleet.CloudTaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		// Without it the SDK hides a closed duplicate behind a handle to the
		// old run; with it the duplicate is seen.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		// Set at start, so the release is listed by model before it runs
		// (and a server without them registered refuses here).
		TypedSearchAttributes: temporal.NewSearchAttributes(
			ModelAttr.ValueSet(in.Model.Name),
			VersionAttr.ValueSet(in.Model.Version),
			StageAttr.ValueSet(modelfleet.StatePending),
		),
	}
	run, err := t.Client.ExecuteWorkflow(ctx, opts, modelfleet.ReleaseWorkflowName, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &started):
		return modelfleet.Run{}, modelfleet.Errorf(modelfleet.ECONFLICT, "release %s already ran", opts.ID)
	case err != nil:
		return modelfleet.Run{}, fmt.Errorf("start %s: %w", opts.ID, err)
	}
	return modelfleet.Run{WorkflowID: opts.ID, RunID: run.GetRunID()}, nil
}

// StartWorkloadRelease implements modelfleet.Orchestrator: a running
// release of the same version is refused (FAIL); a closed one may be run
// again (ALLOW_DUPLICATE).
func (t *Temporal) StartWorkloadRelease(ctx context.Context, in modelfleet.WorkloadReleaseInput) (modelfleet.Run, error) {
	if err := modelfleet.ValidateName("model name", in.Model); err != nil {
		return modelfleet.Run{}, err
	}
	if _, err := modelfleet.ParseWorkloadRef(in.Workload.String()); err != nil {
		return modelfleet.Run{}, err
	}
	in.Resume = nil
	in.ControlKeys = t.controlKeys(in.ControlKeys)
	opts := client.StartWorkflowOptions{
		ID:                       modelfleet.WorkloadReleaseWorkflowID(in.Model, in.Workload),
		TaskQueue:                modelfleet.CloudTaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// Else the SDK hands back the running release as if it were new.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		// Set at start, so a server without ModelfleetWorkload registered
		// refuses here rather than failing the workflow's first task.
		TypedSearchAttributes: temporal.NewSearchAttributes(
			ModelAttr.ValueSet(in.Model),
			WorkloadAttr.ValueSet(in.Workload.String()),
			StageAttr.ValueSet(modelfleet.StatePending),
		),
	}
	run, err := t.Client.ExecuteWorkflow(ctx, opts, modelfleet.WorkloadReleaseWorkflowName, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &started):
		return modelfleet.Run{}, modelfleet.Errorf(modelfleet.ECONFLICT, "release %s is already running", opts.ID)
	case err != nil:
		return modelfleet.Run{}, fmt.Errorf("start %s: %w", opts.ID, err)
	}
	return modelfleet.Run{WorkflowID: opts.ID, RunID: run.GetRunID()}, nil
}

// TriggerRetrain implements modelfleet.Orchestrator. One workflow ID per
// model is what coalesces repeated drift into one retraining
// (USE_EXISTING); a closed retraining workflow is idle history, so a new
// drift starts a new one under the same ID (ALLOW_DUPLICATE). The
// gateway's Azure ML events and modelfleet's own drift monitor both come
// this way.
func (t *Temporal) TriggerRetrain(ctx context.Context, in modelfleet.RetrainInput, tr modelfleet.RetrainTrigger) (modelfleet.Run, error) {
	if err := modelfleet.ValidateName("model name", tr.Model); err != nil {
		return modelfleet.Run{}, err
	}
	in.Model, in.State = tr.Model, nil
	opts := client.StartWorkflowOptions{
		ID:                       modelfleet.RetrainWorkflowID(tr.Model),
		TaskQueue:                modelfleet.CloudTaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			ModelAttr.ValueSet(tr.Model),
			StageAttr.ValueSet(modelfleet.RetrainCollecting),
		),
	}
	run, err := t.Client.SignalWithStartWorkflow(ctx, opts.ID, modelfleet.RetrainTriggerSignal, tr, opts, modelfleet.RetrainWorkflowName, in)
	if err != nil {
		return modelfleet.Run{}, fmt.Errorf("signal-with-start %s: %w", opts.ID, err)
	}
	return modelfleet.Run{WorkflowID: opts.ID, RunID: run.GetRunID()}, nil
}

// SignalRunStatus implements modelfleet.Orchestrator.
func (t *Temporal) SignalRunStatus(ctx context.Context, s modelfleet.RunStatus) error {
	if err := modelfleet.ValidateName("model name", s.Model); err != nil {
		return err
	}
	id := modelfleet.RetrainWorkflowID(s.Model)
	return t.signal(ctx, id, modelfleet.RunStatusSignal, s, "no retraining workflow %s is running")
}

// SignalControl implements modelfleet.Orchestrator.
func (t *Temporal) SignalControl(ctx context.Context, releaseID, action string, c modelfleet.Control) error {
	if !slices.Contains(modelfleet.Signals, action) {
		return modelfleet.Errorf(modelfleet.EINVALID, "%q is not a release control: use one of %s", action, strings.Join(modelfleet.Signals, ", "))
	}
	if err := checkReleaseID(releaseID); err != nil {
		return err
	}
	return t.signal(ctx, releaseID, action, c, "no release %s is running")
}

// SignalVerdict implements modelfleet.Orchestrator.
func (t *Temporal) SignalVerdict(ctx context.Context, releaseID string, v modelfleet.MonitorVerdict) error {
	if releaseID == "" {
		return modelfleet.Errorf(modelfleet.EINVALID, "no release named for the monitor verdict")
	}
	return t.signal(ctx, releaseID, modelfleet.SignalMonitorVerdict, v, "no release %s is running")
}

// signal sends one signal to the running workflow id; Temporal's NotFound
// (no such workflow, or not running) is ENOTFOUND with notRunning's
// message.
func (t *Temporal) signal(ctx context.Context, id, name string, arg any, notRunning string) error {
	err := t.Client.SignalWorkflow(ctx, id, "", name, arg)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return modelfleet.Errorf(modelfleet.ENOTFOUND, notRunning, id)
	case err != nil:
		return fmt.Errorf("signal %s to %s: %w", name, id, err)
	}
	return nil
}

// checkReleaseID refuses an ID that is no release's workflow ID.
func checkReleaseID(id string) error {
	if !strings.HasPrefix(id, "release/") {
		return modelfleet.Errorf(modelfleet.EINVALID, "%q is not a release's workflow ID (release/<model>/<version> or release/<model>/workload/<name>/<version>)", id)
	}
	return nil
}

// ReleaseStatus implements modelfleet.Orchestrator.
func (t *Temporal) ReleaseStatus(ctx context.Context, id string) (modelfleet.ReleaseStatus, error) {
	if err := checkReleaseID(id); err != nil {
		return modelfleet.ReleaseStatus{}, err
	}
	timeout := t.StatusTimeout
	if timeout <= 0 {
		timeout = DefaultStatusTimeout
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := t.Client.QueryWorkflow(qctx, id, "", modelfleet.StatusQuery)
	if err == nil {
		var st modelfleet.ReleaseStatus
		if err := v.Get(&st); err != nil {
			return st, fmt.Errorf("decode status of %s: %w", id, err)
		}
		return st, nil
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return modelfleet.ReleaseStatus{}, modelfleet.Errorf(modelfleet.ENOTFOUND, "no release %q: has the model version been registered, or the workload release started?", id)
	}
	// No worker to answer the query: fall back to what the server knows.
	desc, derr := t.Client.DescribeWorkflowExecution(ctx, id, "")
	if derr != nil {
		return modelfleet.ReleaseStatus{}, fmt.Errorf("status of %s: %w", id, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	// A release that completed returns its final status as its result:
	// as full as the query's answer (waves, sites, controls), with no
	// worker needed. (A query can also miss a release closing under it.)
	if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		var st modelfleet.ReleaseStatus
		if rerr := t.Client.GetWorkflow(ctx, id, info.GetExecution().GetRunId()).Get(ctx, &st); rerr == nil {
			return st, nil
		}
	}
	s := summarize(info)
	st := modelfleet.ReleaseStatus{Model: s.Model, Workload: s.Workload, Sites: []modelfleet.SiteStatus{}}
	st.State = s.State
	st.Reason = "status query unavailable (no cloud worker running?): " + err.Error()
	return st, nil
}

// ListReleases implements modelfleet.Orchestrator from Temporal's
// visibility store, using the search attributes the release workflows
// maintain.
func (t *Temporal) ListReleases(ctx context.Context, model string, limit int) ([]modelfleet.ReleaseSummary, error) {
	if model != "" {
		if err := modelfleet.ValidateName("model name", model); err != nil {
			return nil, err
		}
	}
	query := releasesQuery(model)
	out := []modelfleet.ReleaseSummary{}
	var token []byte
	for {
		resp, err := t.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token, PageSize: 100})
		if err != nil {
			return nil, fmt.Errorf("list releases: %w", err)
		}
		for _, info := range resp.GetExecutions() {
			out = append(out, summarize(info))
			if limit > 0 && len(out) >= limit {
				return out, nil
			}
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return out, nil
		}
	}
}

// Champion implements modelfleet.Orchestrator (and modelfleet.Champions)
// from the visibility store: the version of the most recently closed
// release in ChampionQuery, at most MaxScan of them read.
func (t *Temporal) Champion(ctx context.Context, model string) (string, error) {
	if err := modelfleet.ValidateName("model name", model); err != nil {
		return "", err
	}
	limit := t.MaxScan
	if limit <= 0 {
		limit = DefaultMaxScan
	}
	var best string
	var bestAt time.Time
	var token []byte
	for seen := 0; seen < limit; {
		resp, err := t.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: ChampionQuery(model), NextPageToken: token, PageSize: 100})
		if err != nil {
			return "", fmt.Errorf("list releases of %s: %w", model, err)
		}
		for _, info := range resp.GetExecutions() {
			seen++
			closed := info.GetCloseTime().AsTime()
			if best != "" && !closed.After(bestAt) {
				continue
			}
			v := keyword(info.GetSearchAttributes().GetIndexedFields(), VersionAttr.GetName())
			if v == "" { // release/<model>/<version>
				if ref, wl := parseReleaseID(info.GetExecution().GetWorkflowId()); wl == nil && ref.Name == model {
					v = ref.Version
				}
			}
			if v != "" {
				best, bestAt = v, closed
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	return best, nil
}
