// This file declares the Orchestrator: the one way the rest of the control
// plane starts, signals, queries and lists the workflows of
// workflow_api.go. Package orchestrator implements it on Temporal (the
// ID-reuse policies, search attributes and visibility decoding live only
// there); orchestrator/orchestratortest is an in-memory fake for the tests
// of its callers.

package modelfleet

import (
	"context"
	"time"
)

// Run names the workflow run an Orchestrator started, reused or signalled.
type Run struct {
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"`
}

// ReleaseSummary is one release as the visibility store lists it (one line
// of `modelfleet release list`).
type ReleaseSummary struct {
	// Model is the model version released; of a workload release, the
	// model the workload calls (no version), with Workload set.
	Model     ModelRef     `json:"model"`
	Workload  *WorkloadRef `json:"workload,omitempty"`
	State     string       `json:"state"`
	Workflow  string       `json:"workflowId"`
	StartedAt time.Time    `json:"startedAt"`
	ClosedAt  *time.Time   `json:"closedAt,omitempty"`
}

// Orchestrator starts, signals, queries and lists the control plane's
// workflows: releases of model versions (ReleaseWorkflowID), releases of
// workload versions (WorkloadReleaseWorkflowID) and the retraining workflow
// of each model (RetrainWorkflowID).
//
// Errors carry the codes of this package (ErrorCode): EINVALID for input
// that can never succeed, ENOTFOUND and ECONFLICT as each method says.
// Any other error (the orchestrator unreachable, a timeout) is EINTERNAL,
// wraps the cause, and is worth retrying.
//
// An Orchestrator is also the Champions of the retraining activities.
type Orchestrator interface {
	// StartRelease starts the release of in.Model (ReleaseWorkflowID),
	// with its model, version and stage (StatePending) search attributes
	// set. A redelivered ModelRegistered is harmless: a release of that
	// version still running is reused (its Run is returned, no error); one
	// that already ran is not run again, an ECONFLICT. An invalid model
	// reference is EINVALID.
	StartRelease(ctx context.Context, in ReleaseInput) (Run, error)

	// StartWorkloadRelease starts the release of in.Workload alone to the
	// sites of in.Model (WorkloadReleaseWorkflowID), with its model,
	// workload and stage search attributes set (so a server without them
	// registered refuses here). A release of that workload version still
	// running is ECONFLICT ("already running"); a closed one (rolled back,
	// say) may run again. An invalid model name or workload reference is
	// EINVALID.
	StartWorkloadRelease(ctx context.Context, in WorkloadReleaseInput) (Run, error)

	// TriggerRetrain signal-with-starts the retraining workflow of t.Model
	// (RetrainWorkflowID) with t as a RetrainTriggerSignal: a running one
	// receives the trigger (repeated drift coalesces there, and it drops a
	// redelivered trigger by its event ID); otherwise a new one starts
	// with in (its Model and State are set here) and the trigger, even
	// where a closed one ran before. An invalid model name is EINVALID.
	TriggerRetrain(ctx context.Context, in RetrainInput, t RetrainTrigger) (Run, error)

	// SignalRunStatus tells the retraining workflow of s.Model about its
	// job (RunStatusSignal). With no such workflow running it is
	// ENOTFOUND: there is nobody to tell.
	SignalRunStatus(ctx context.Context, s RunStatus) error

	// SignalControl sends an operator's control (action, one of Signals)
	// to the running release with workflow ID releaseID. An action not in
	// Signals, or an ID that is no release's, is EINVALID; no such release
	// running is ENOTFOUND.
	SignalControl(ctx context.Context, releaseID, action string, c Control) error

	// SignalVerdict sends a drift monitor's verdict (SignalMonitorVerdict)
	// to the running release with workflow ID releaseID. No such release
	// running is ENOTFOUND.
	SignalVerdict(ctx context.Context, releaseID string, v MonitorVerdict) error

	// ReleaseStatus reads the status of the release with workflow ID
	// releaseID (a model version's or a workload version's): its status
	// query while a worker can answer it, else the state its execution
	// and last recorded stage imply, with Reason saying the query was
	// unavailable. An ID that is no release's is EINVALID; no release by
	// that ID, running or closed, is ENOTFOUND.
	ReleaseStatus(ctx context.Context, releaseID string) (ReleaseStatus, error)

	// ListReleases lists the releases of model and workload versions,
	// newest first, of one model ("" for all), at most limit of them (0
	// for all). An invalid model name is EINVALID.
	ListReleases(ctx context.Context, model string, limit int) ([]ReleaseSummary, error)

	// Champion returns the model's version in production: that of its
	// most recently closed release that succeeded; "" if none did. A
	// later release that failed, was aborted or rolled back does not
	// change it. An invalid model name is EINVALID.
	Champion(ctx context.Context, model string) (version string, err error)
}

var _ Champions = Orchestrator(nil)
