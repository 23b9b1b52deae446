package workflows

import (
	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
)

// ReleaseWorkflowName is the registered type name of the release workflow;
// the gateway starts it by this name so it does not import workflow code.
const ReleaseWorkflowName = "Release"

// StatusQuery is the query every long-running workflow answers.
const StatusQuery = "status"

// ReleaseInput starts the release of one model version. It is derived from a
// ModelRegistered event (Azure ML's or the embedded registry's).
type ReleaseInput struct {
	Model      modelfleet.ModelRef `json:"model"`
	Tags       map[string]string   `json:"tags,omitempty"`
	Properties map[string]string   `json:"properties,omitempty"`
	// EventID is the id of the event that caused the release, for audit.
	EventID string `json:"eventId,omitempty"`
	// Resume is set when a release continues as new (see Checkpoint).
	Resume *Checkpoint `json:"resume,omitempty"`
}

// Release states, in the order a release moves through them. Failed is
// terminal like Succeeded.
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
	Model      modelfleet.ModelRef          `json:"model"`
	State      string                       `json:"state"`
	Reason     string                       `json:"reason,omitempty"`
	Digest     string                       `json:"digest,omitempty"`
	Validation *activities.ValidationResult `json:"validation,omitempty"`
	Champion   *ChampionCheck               `json:"champion,omitempty"`
	Waves      []WaveStatus                 `json:"waves,omitempty"`
	Gate       *GateStatus                  `json:"gate,omitempty"`
	Paused     bool                         `json:"paused,omitempty"`
	Controls   []ControlRecord              `json:"controls,omitempty"`
	Sites      []SiteStatus                 `json:"sites"`
	StartedAt  string                       `json:"startedAt,omitempty"`
	UpdatedAt  string                       `json:"updatedAt,omitempty"`
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
