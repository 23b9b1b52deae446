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
}

// Release states, in the order a release moves through them. Failed is
// terminal like Succeeded.
const (
	StatePending    = "pending"
	StateValidating = "validating"
	StateDeploying  = "deploying"
	StateSucceeded  = "succeeded"
	StateFailed     = "failed"
)

// Per-site states.
const (
	SitePending   = "pending"
	SiteDeploying = "deploying"
	SiteHealthy   = "healthy"
	SiteFailed    = "failed"
)

// ReleaseStatus is what the status query answers and the workflow returns.
type ReleaseStatus struct {
	Model      modelfleet.ModelRef          `json:"model"`
	State      string                       `json:"state"`
	Reason     string                       `json:"reason,omitempty"`
	Digest     string                       `json:"digest,omitempty"`
	Validation *activities.ValidationResult `json:"validation,omitempty"`
	Sites      []SiteStatus                 `json:"sites"`
	StartedAt  string                       `json:"startedAt,omitempty"`
	UpdatedAt  string                       `json:"updatedAt,omitempty"`
}

// SiteStatus is one site's progress in a release.
type SiteStatus struct {
	Site      string `json:"site"`
	State     string `json:"state"`
	Reason    string `json:"reason,omitempty"`
	UpdatedAt string `json:"updatedAt,omitempty"`
}
