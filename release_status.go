// This file holds what a release reports: the status its query answers and
// its workflow returns, and the records inside it.

package modelfleet

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
	Model      ModelRef          `json:"model"`
	Workload   *WorkloadRef      `json:"workload,omitempty"`
	State      string            `json:"state"`
	Reason     string            `json:"reason,omitempty"`
	Digest     string            `json:"digest,omitempty"`
	Validation *ValidationResult `json:"validation,omitempty"`
	// Signed says the validated version's release statement was signed
	// (sites that pinned release keys load only a signed version).
	Signed   bool           `json:"signed,omitempty"`
	Champion *ChampionCheck `json:"champion,omitempty"`
	Waves    []WaveStatus   `json:"waves,omitempty"`
	Gate     *GateStatus    `json:"gate,omitempty"`
	Paused   bool           `json:"paused,omitempty"`
	// Owner is who registered the model version (PropRegisteredBy) or
	// started the workload release: the identity an ml-engineer's abort
	// must match, and whose approve a policy may forbid.
	Owner    string          `json:"owner,omitempty"`
	Controls []ControlRecord `json:"controls,omitempty"`
	// Monitor lists the drift monitor's breaches of the new version
	// received while the release ran (the last MaxMonitorVerdicts).
	Monitor   []MonitorVerdict `json:"monitor,omitempty"`
	Sites     []SiteStatus     `json:"sites"`
	StartedAt string           `json:"startedAt,omitempty"`
	UpdatedAt string           `json:"updatedAt,omitempty"`
}

// WorkflowID is the release's workflow ID.
func (s ReleaseStatus) WorkflowID() string {
	if s.Workload != nil {
		return WorkloadReleaseWorkflowID(s.Model.Name, *s.Workload)
	}
	return ReleaseWorkflowID(s.Model)
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
	// Analyses are the wave's bake analyses, the last MaxAnalyses.
	Analyses []BakeAnalysis `json:"analyses,omitempty"`
}

// MaxAnalyses bounds WaveStatus.Analyses: a wave of many batches keeps its
// latest.
const MaxAnalyses = 10

// Verdicts of a bake analysis and of each criterion in it.
const (
	VerdictPass         = "pass"
	VerdictFail         = "fail"
	VerdictInconclusive = "inconclusive" // too few samples, or readings not comparable
	VerdictMeasuring    = "measuring"    // a bake's first window, not judged yet
)

// BakeAnalysis is one bake's judgement of the wave's criteria, measured
// over the bake window alone: the difference between the sites' counters
// read when the step converged and when the bake ended.
type BakeAnalysis struct {
	Step  int    `json:"step"`  // the new version's traffic share, percent
	Sites int    `json:"sites"` // sites measured
	From  string `json:"from"`  // the window, in workflow time
	To    string `json:"to,omitempty"`
	// Extended counts the times an inconclusive window extended the bake.
	Extended int    `json:"extended,omitempty"`
	Verdict  string `json:"verdict"`
	// Outcome says what the release did with an inconclusive verdict
	// (the wave's onInconclusive, or an operator's control).
	Outcome  string            `json:"outcome,omitempty"`
	Criteria []CriterionResult `json:"criteria"`
}

// CriterionResult is one criterion over one bake window.
type CriterionResult struct {
	Name       string  `json:"name"` // errorRate, p99LatencyMs, predictionShift, quality
	Value      float64 `json:"value"`
	Threshold  float64 `json:"threshold"`
	Samples    int64   `json:"samples"`
	MinSamples int64   `json:"minSamples"`
	Verdict    string  `json:"verdict"`
	Note       string  `json:"note,omitempty"`
}

// GateStatus is the approval gate the release waits at.
type GateStatus struct {
	After     string `json:"after"`
	Since     string `json:"since"`
	Deadline  string `json:"deadline"`
	OnTimeout string `json:"onTimeout"`
	// Needed approvals pass the gate (the policy's approval.count; 0
	// means 1), from as many different identities when Distinct.
	Needed   int  `json:"needed,omitempty"`
	Distinct bool `json:"distinct,omitempty"`
	// SelfApprovalForbidden: the release's Owner may not approve.
	SelfApprovalForbidden bool `json:"selfApprovalForbidden,omitempty"`
	// Approvals are who approved this gate so far.
	Approvals []string `json:"approvals,omitempty"`
}

// Quorum reports whether the gate has the approvals it needs.
func (g *GateStatus) Quorum() bool { return len(g.Approvals) >= max(g.Needed, 1) }

// SiteStatus is one site's progress in a release.
type SiteStatus struct {
	Site      string `json:"site"`
	Wave      string `json:"wave,omitempty"`
	State     string `json:"state"`
	Reason    string `json:"reason,omitempty"`
	UpdatedAt string `json:"updatedAt,omitempty"`
}

// ControlRecord is a control as the release recorded it.
type ControlRecord struct {
	Action string `json:"action"`
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
	At     string `json:"at"`
	Wave   string `json:"wave,omitempty"`
	// Refused, if set, says why the release did not act on the control
	// (an unsigned or forged statement, one for another gate, a replayed
	// nonce, an approve with no gate open); By is then what the sender
	// claimed.
	Refused string `json:"refused,omitempty"`
	// Verified: By is the subject of a statement the release verified.
	Verified bool `json:"verified,omitempty"`
}

// ChampionGateName is GateStatus.After while a release waits at the
// champion gate.
const ChampionGateName = "champion"

// Outcomes of the champion gate.
const (
	GatePassed     = "passed"
	GateWaiting    = "waiting-for-override"
	GateOverridden = "overridden"
	GateRejected   = "rejected"
	GateStopped    = "stopped" // rejected, aborted or rolled back by an operator at the gate
)

// ChampionCheck is the champion gate's record in a release's status.
type ChampionCheck struct {
	Comparison
	Outcome  string         `json:"outcome"`
	Override *ControlRecord `json:"override,omitempty"`
}

// Comparison is the champion/challenger gate's verdict: both models scored
// on the same labelled data, the challenger passing when it beats the
// champion by at least Margin on Metric.
type Comparison struct {
	Model string `json:"model"`
	// Challenger is the registered version, or "run <id>" for a
	// retraining output.
	Challenger      string  `json:"challenger"`
	Champion        string  `json:"champion,omitempty"` // version; "" when there is none
	Metric          string  `json:"metric,omitempty"`
	ChallengerValue float64 `json:"challengerValue"`
	ChampionValue   float64 `json:"championValue"`
	Margin          float64 `json:"margin"`
	Rows            int     `json:"rows"`
	// Holdout says which data: a local file, or a registered validation
	// set (HoldoutURL and HoldoutDigest).
	Holdout       string `json:"holdout,omitempty"`
	HoldoutPath   string `json:"holdoutPath,omitempty"`
	HoldoutURL    string `json:"holdoutUrl,omitempty"`
	HoldoutDigest string `json:"holdoutDigest,omitempty"`
	Passed        bool   `json:"passed"`
	// Compared is false when no comparison was possible (no champion, no
	// data); Reason says why and what was decided.
	Compared bool   `json:"compared"`
	Reason   string `json:"reason"`
	// ChallengerMetrics is the training job's metrics.json.
	ChallengerMetrics map[string]float64 `json:"challengerMetrics,omitempty"`
	Features          []string           `json:"features,omitempty"`
}

// ValidationResult is the outcome of validating a model version.
type ValidationResult struct {
	Metric    string  `json:"metric,omitempty"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Rows      int     `json:"rows"`
	Passed    bool    `json:"passed"`
	Note      string  `json:"note,omitempty"`
}

// SiteServing is a site's state as its own report shows it: it serves the
// release's version. The release's status changes a site's state only
// when its batch completes, so a site may serve the new version for a
// while as "deploying"; WithReports says what the site says.
const SiteServing = "serving"

// WithReports returns s with the state of each site that is still
// pending, waiting or deploying in the release's eyes taken from the
// site's own record (sites, by ID: what its agent last reported it
// serves): SiteServing once it serves the released version. Other states
// (baking, healthy, failed, rolled back) are the release's verdicts and
// stay. A workload release (no model version) is returned as it is.
func (s ReleaseStatus) WithReports(sites map[string]Site) ReleaseStatus {
	if s.Model.Version == "" || s.Workload != nil {
		return s
	}
	out := s
	out.Sites = make([]SiteStatus, len(s.Sites))
	for i, ss := range s.Sites {
		out.Sites[i] = ss
		switch ss.State {
		case SitePending, SiteWaitingForWindow, SiteDeploying:
		default:
			continue
		}
		for _, m := range sites[ss.Site].Serving {
			if m.ModelRef == s.Model {
				out.Sites[i].State = SiteServing
				out.Sites[i].Reason = "the site reports serving " + s.Model.Name + ":" + s.Model.Version
				if m.LoadedAt != "" {
					out.Sites[i].Reason += " since " + m.LoadedAt
					out.Sites[i].UpdatedAt = m.LoadedAt
				}
			}
		}
	}
	return out
}
