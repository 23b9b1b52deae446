package workflows

import (
	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/workflows/wfapi"
)

// Names, inputs and signal payloads starters need live in wfapi, so that
// the gateway need not link this package; they are aliased here.
const (
	ReleaseWorkflowName         = wfapi.ReleaseWorkflowName
	WorkloadReleaseWorkflowName = wfapi.WorkloadReleaseWorkflowName
	StatusQuery                 = wfapi.StatusQuery
)

// ReleaseInput starts the release of one model version. Its Resume is a
// Checkpoint (see continue.go).
type ReleaseInput = wfapi.ReleaseInput

// WorkloadReleaseInput starts the release of one workload version alone.
type WorkloadReleaseInput = wfapi.WorkloadReleaseInput

// Release states (see wfapi).
const (
	StatePending          = wfapi.StatePending
	StateValidating       = wfapi.StateValidating
	StateDeploying        = wfapi.StateDeploying
	StateAwaitingApproval = wfapi.StateAwaitingApproval
	StatePaused           = wfapi.StatePaused
	StateRollingBack      = wfapi.StateRollingBack
	StateSucceeded        = wfapi.StateSucceeded
	StateFailed           = wfapi.StateFailed
	StateAborted          = wfapi.StateAborted
	StateRolledBack       = wfapi.StateRolledBack
)

// Per-site and per-wave states.
const (
	SitePending          = "pending"
	SiteWaitingForWindow = "waiting-for-window"
	SiteDeploying        = "deploying"
	SiteBaking           = "baking"
	SiteHealthy          = "healthy"
	SiteFailed           = "failed"
	SiteRolledBack       = "rolled-back"
)

// ReleaseStatus is what the status query answers and the workflow returns.
type ReleaseStatus struct {
	// Model is the model version released; of a workload release, the
	// model its workload calls (no version), and Workload is set.
	Model      modelfleet.ModelRef          `json:"model"`
	Workload   *modelfleet.WorkloadRef      `json:"workload,omitempty"`
	State      string                       `json:"state"`
	Reason     string                       `json:"reason,omitempty"`
	Digest     string                       `json:"digest,omitempty"`
	Validation *activities.ValidationResult `json:"validation,omitempty"`
	Champion   *ChampionCheck               `json:"champion,omitempty"`
	Waves      []WaveStatus                 `json:"waves,omitempty"`
	Gate       *GateStatus                  `json:"gate,omitempty"`
	Paused     bool                         `json:"paused,omitempty"`
	Controls   []ControlRecord              `json:"controls,omitempty"`
	// Monitor lists the drift monitor's breaches of the new version
	// received while the release ran (the last MaxMonitorVerdicts).
	Monitor   []wfapi.MonitorVerdict `json:"monitor,omitempty"`
	Sites     []SiteStatus           `json:"sites"`
	StartedAt string                 `json:"startedAt,omitempty"`
	UpdatedAt string                 `json:"updatedAt,omitempty"`
}

// WorkflowID is the release's workflow ID.
func (s ReleaseStatus) WorkflowID() string {
	if s.Workload != nil {
		return modelfleet.WorkloadReleaseWorkflowID(s.Model.Name, *s.Workload)
	}
	return modelfleet.ReleaseWorkflowID(s.Model)
}

// WaveStatus is one wave's progress.
type WaveStatus struct {
	Name        string         `json:"name"`
	State       string         `json:"state"`
	Sites       int            `json:"sites"`
	Counts      map[string]int `json:"counts"`
	Weight      int            `json:"weight,omitempty"` // traffic share of the new version now
	Failed      int            `json:"failed"`
	Budget      int            `json:"budget"` // failures allowed
	BakeUntil   string         `json:"bakeUntil,omitempty"`
	WindowUntil string         `json:"windowUntil,omitempty"` // when the next maintenance window opens
	Reason      string         `json:"reason,omitempty"`
}

// GateStatus is the approval gate the release waits at.
type GateStatus struct {
	After     string `json:"after"`
	Since     string `json:"since"`
	Deadline  string `json:"deadline"`
	OnTimeout string `json:"onTimeout"`
}

// SiteStatus is one site's progress in a release.
type SiteStatus struct {
	Site      string `json:"site"`
	Wave      string `json:"wave,omitempty"`
	State     string `json:"state"`
	Reason    string `json:"reason,omitempty"`
	UpdatedAt string `json:"updatedAt,omitempty"`
}
