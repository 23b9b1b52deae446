// This file is the workflows' contract with everyone who starts, signals
// or queries them: registered type names, IDs, signal and query names,
// search attribute names, inputs and signal payloads. The strings and JSON
// shapes are recorded in workflow histories and must not change (the replay
// tests in workflows/ and TestRecordedNames guard them).

package modelfleet

import (
	"encoding/json"
	"time"
)

// Registered workflow type names. Starters use them instead of the
// workflow functions.
const (
	ReleaseWorkflowName         = "Release"
	RetrainWorkflowName         = "Retrain"
	WorkloadReleaseWorkflowName = "WorkloadRelease"
)

// StatusQuery is the query every long-running workflow answers.
const StatusQuery = "status"

// Custom search attribute names (Keyword, except SearchAttrSites, a
// KeywordList). Package workflows makes the typed keys from them.
const (
	SearchAttrModel   = "ModelfleetModel"
	SearchAttrVersion = "ModelfleetVersion"
	SearchAttrStage   = "ModelfleetStage"
	SearchAttrSites   = "ModelfleetSite"
	// SearchAttrWorkload ("name:version") is set on workload releases.
	SearchAttrWorkload = "ModelfleetWorkload"
)

// PropRegisteredBy is the model version property in which the registry
// records the verified identity that registered it: the release's owner.
const PropRegisteredBy = "modelfleet.registeredBy"

// ReleaseInput starts the release of one model version. It is derived from a
// ModelRegistered event (Azure ML's or the embedded registry's).
type ReleaseInput struct {
	Model      ModelRef          `json:"model"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
	// EventID is the id of the event that caused the release, for audit.
	EventID string `json:"eventId,omitempty"`
	// ControlKeys are the public keys whose signed ControlStatements the
	// release accepts as controls (the gateway's control-signing keys,
	// new and old during a rotation). Empty: unsigned controls are
	// accepted, as before signing existed.
	ControlKeys []TrustedKey `json:"controlKeys,omitempty"`
	// Resume is set only by the release itself when it continues as new:
	// its workflows.Checkpoint, as JSON. Starters leave it empty. It is raw
	// here so that starters need not link the types a checkpoint holds.
	Resume json.RawMessage `json:"resume,omitempty"`
}

// WorkloadReleaseInput starts the release of one registered workload
// version alone (WorkloadReleaseWorkflowID): the sites of the
// model it calls swap to it wave by wave under the model's release policy,
// and keep the model versions they serve.
type WorkloadReleaseInput struct {
	Model    string      `json:"model"` // the model the workload calls
	Workload WorkloadRef `json:"workload"`
	// Policy is a rollout policy document (YAML, as `modelfleet policy set`
	// takes) this release follows instead of the model's; empty: the
	// model's policy.
	Policy string `json:"policy,omitempty"`
	// By is who asked for it, for audit.
	By string `json:"by,omitempty"`
	// ControlKeys: as ReleaseInput.ControlKeys.
	ControlKeys []TrustedKey `json:"controlKeys,omitempty"`
	// Resume: as ReleaseInput.Resume.
	Resume json.RawMessage `json:"resume,omitempty"`
}

// Release states, in the order a release moves through them. Failed is
// terminal like Succeeded. The stage search attribute takes these values.
const (
	StatePending          = "pending"
	StateValidating       = "validating"
	StateDeploying        = "deploying"
	StateAwaitingApproval = "awaiting-approval"
	StatePaused           = "paused"
	StateRollingBack      = "rolling-back"
	StateSucceeded        = "succeeded"
	StateFailed           = "failed"
	StateAborted          = "aborted"
	StateRolledBack       = "rolled-back"
)

// Control signals on a release. Each carries a Control naming who and why,
// so the workflow history is the audit log. They work from the Temporal UI
// ("Send a signal", name and JSON input), `temporal workflow signal`, and
// `modelfleet release <action>`.
const (
	SignalApprove  = "approve"   // pass the current approval gate
	SignalReject   = "reject"    // refuse at the gate: every touched site rolls back
	SignalPause    = "pause"     // finish the current step, then hold
	SignalResume   = "resume"    // continue after a pause
	SignalAbort    = "abort"     // stop where it is; sites keep their current traffic
	SignalRollback = "rollback"  // restore every touched site to its previous versions and weights
	SignalSkipBake = "skip-bake" // end the current bake now (recorded)
)

// Signals lists every control signal, in the order the CLI shows them.
var Signals = []string{SignalApprove, SignalReject, SignalPause, SignalResume, SignalAbort, SignalRollback, SignalSkipBake}

// Control is the payload of every control signal.
type Control struct {
	By     string `json:"by"`
	Reason string `json:"reason"`
	// Statement is the gateway's signed ControlStatement (SignControl).
	// A release started with ControlKeys accepts a control only with a
	// statement one of them signed, and then records the statement's
	// subject, not By.
	Statement *Envelope `json:"statement,omitempty"`
}

// Signals the retraining workflow receives.
const (
	// RetrainTriggerSignal carries a RetrainTrigger: drift was detected.
	RetrainTriggerSignal = "trigger"
	// RunStatusSignal carries a RunStatus of the retraining job.
	RunStatusSignal = "run-status"
)

// RetrainWorkflowID is the one retraining workflow of a model. One ID per
// model is what coalesces repeated drift events into one retraining.
func RetrainWorkflowID(model string) string { return "retrain/" + model }

// RetrainRunTag is the Azure ML run tag the product sets on every retraining
// job it submits, with the model name as value; the gateway routes that
// job's RunCompleted and RunStatusChanged events to RetrainWorkflowID.
const RetrainRunTag = "modelfleet.retrain"

// Stages of a retraining workflow, also its ModelfleetStage search attribute.
const (
	RetrainCollecting  = "collecting"      // debounce: waiting for more triggers
	RetrainWaiting     = "waiting-for-job" // retraining requested (job submitted), job not finished
	RetrainEvaluating  = "evaluating"      // the job completed: challenger against champion
	RetrainRegistering = "registering"     // the challenger won: registering it
	RetrainCooldown    = "cooldown"        // a retraining finished recently
	RetrainIdle        = "idle"            // nothing to do; closes after IdleTimeout
	RetrainClosed      = "closed"          // the workflow returned
)

// Reasons a RetrainTrigger gives.
const (
	ReasonDatasetDrift     = "dataset-drift"              // DatasetDriftDetected
	ReasonMonitorThreshold = "monitor-threshold-breached" // model monitoring (v2)
)

// RetrainTrigger is one reason to retrain a model, from one event.
type RetrainTrigger struct {
	Reason           string    `json:"reason"`
	Source           string    `json:"source,omitempty"` // the event's topic or source
	EventID          string    `json:"eventId"`
	Model            string    `json:"model"`
	DriftCoefficient float64   `json:"driftCoefficient,omitempty"`
	Monitor          string    `json:"monitor,omitempty"` // drift monitor or signal name
	RunID            string    `json:"runId,omitempty"`   // the monitor's run
	Time             time.Time `json:"time,omitzero"`     // when the event happened
}

// RunStatus is a status change of a retraining job in Azure ML.
type RunStatus struct {
	Model   string    `json:"model"`
	RunID   string    `json:"runId"`
	Status  string    `json:"status"` // Azure ML's: Running, Completed, Failed, Canceled, ...
	EventID string    `json:"eventId"`
	Time    time.Time `json:"time,omitzero"`
}

// RetrainInput starts (or continues) the retraining workflow of a model.
// Zero durations take the defaults (workflows.DefaultRetrain*).
type RetrainInput struct {
	Model       string        `json:"model"`
	Debounce    time.Duration `json:"debounce,omitempty"`    // wait for more triggers after the first
	Cooldown    time.Duration `json:"cooldown,omitempty"`    // after a retraining finished, whatever its result
	JobTimeout  time.Duration `json:"jobTimeout,omitempty"`  // give up waiting for the job
	IdleTimeout time.Duration `json:"idleTimeout,omitempty"` // close after this long without triggers
	// HistoryLimit continues-as-new at this many history events, besides
	// whenever the server suggests it.
	HistoryLimit int `json:"historyLimit,omitempty"`
	// Margin is how much better than the champion, on the metric its model
	// card declares, a challenger must score on the holdout set; nil takes
	// workflows.DefaultRetrainMargin, 0 means "no worse".
	Margin *float64 `json:"margin,omitempty"`
	// PollInterval is the polling fallback's interval (default
	// workflows.DefaultRetrainPoll).
	PollInterval time.Duration `json:"pollInterval,omitempty"`
	// State is carried across continue-as-new by the workflow itself: its
	// workflows.RetrainState, as JSON. Starters leave it empty.
	State json.RawMessage `json:"state,omitempty"`
}

// SignalMonitorVerdict carries a MonitorVerdict to a release: the drift
// monitor found a version breaching at a site. It is not one of the
// operators' Signals; the monitor sends it.
const SignalMonitorVerdict = "monitor-verdict"

// ReasonEdgeDrift is a retraining trigger from modelfleet's own drift
// monitor, on the edge sites' signal messages.
const ReasonEdgeDrift = "edge-drift"

// MonitorVerdict is a breach the drift monitor found for one version at one
// site over one window.
type MonitorVerdict struct {
	ID              string    `json:"id"` // the verdict's ID: site, model, version, window end
	Site            string    `json:"site"`
	Version         string    `json:"version"`
	Reason          string    `json:"reason"`
	WindowEnd       time.Time `json:"windowEnd"`
	DataDrift       bool      `json:"dataDrift,omitempty"`
	PredictionDrift bool      `json:"predictionDrift,omitempty"`
	QualityBreached bool      `json:"qualityBreached,omitempty"`
}
