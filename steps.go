// This file is the release engine's contract with the fleet directory: the
// steps, leases and progress reads a release sends, whichever store serves
// them (fleet.Directory in-process, fleet.Client over HTTP).

package modelfleet

// StepRequest moves sites one traffic step of a release: the new version
// takes New.Weight percent and the version the site served before the
// release (its primary) keeps the rest. A step of a workload-only release
// has no New.Version: it carries Workload and leaves the model's versions
// as they are, under the model's lease all the same.
type StepRequest struct {
	Release string         `json:"release"`
	Model   string         `json:"model"`
	New     DesiredVersion `json:"new"`
	Sites   []string       `json:"sites"`
	// TraceParent (W3C) is recorded with the change for the sites' agents.
	TraceParent string `json:"traceparent,omitempty"`
	// Wave and ApprovedBy are recorded with the change (for GitOps commit
	// messages): the release's wave, and who approved it past its gate.
	Wave       string `json:"wave,omitempty"`
	ApprovedBy string `json:"approvedBy,omitempty"`
	// Workload is the workload version the release carries, if any: the
	// sites run it from the first step on; a rollback restores what ran.
	Workload *WorkloadRecord `json:"workload,omitempty"`
	// WorkloadStatement is the signed statement of Workload when a
	// workload release carries it alone (DesiredWorkload.Statement).
	WorkloadStatement *Envelope `json:"workloadStatement,omitempty"`
}

// StepResult says what a step or rollback did, site by site in aggregate.
type StepResult struct {
	Changed   int        `json:"changed"`
	Unchanged int        `json:"unchanged"`
	Conflicts []Conflict `json:"conflicts,omitempty"` // sites another release holds
}

// Conflict is a site whose lease another release holds.
type Conflict struct {
	Site   string `json:"site"`
	Holder string `json:"holder"`
}

// Progress is how far a set of sites has converged on a model's desired
// state, with the live figures of the version being rolled out.
type Progress struct {
	Converged []string      `json:"converged"`
	Pending   []string      `json:"pending"`
	Failed    []SiteFailure `json:"failed,omitempty"`
	// Figures of Version summed over converged sites (P99 is the worst site).
	Requests     int64   `json:"requests"`
	Errors       int64   `json:"errors"`
	P99LatencyMs float64 `json:"p99LatencyMs"`
	// PredictionShift is the Jensen–Shannon distance (base 2: 0 same, 1
	// disjoint) between Version's predictions and those of the versions it
	// runs beside at the converged sites (what it replaces), over
	// PredictionBins. It is 0 while either side has fewer than
	// MinShiftSamples predictions; ShiftSamples says how many Version had.
	PredictionShift float64 `json:"predictionShift,omitempty"`
	ShiftSamples    int64   `json:"shiftSamples,omitempty"`
	// Labelled and Correct count Version's predictions whose ground truth
	// the sites received, and those it got right.
	Labelled int64 `json:"labelled,omitempty"`
	Correct  int64 `json:"correct,omitempty"`
	// Residuals sum Version's predictions whose true value the sites
	// received, for a regressor (nil for classifiers).
	Residuals *Residuals `json:"residuals,omitempty"`
	// Counters are the cumulative counters behind these figures, summed
	// over the converged sites: a release subtracts the counters read at a
	// bake's start from those read at its end to judge the bake window
	// alone. Nil from a directory older than the window analysis.
	Counters *Counters `json:"counters,omitempty"`
}

// Counters are a version's cumulative counters summed over a set of sites.
// Two readings of the same sites are comparable only while Epochs is equal:
// it changes when any site's agent restarts (its counters start over) or a
// site joins or leaves the set.
type Counters struct {
	Sites int `json:"sites"` // converged sites counted
	// Epochs fingerprints the counted sites and their counters' epochs.
	Epochs   string `json:"epochs"`
	Requests int64  `json:"requests"`
	Errors   int64  `json:"errors"`
	// Latency counts requests per LatencyBuckets bin; Predictions per
	// PredictionBins bin. Replaced counts the predictions of the versions
	// the new version runs beside (what it replaces); in a workload-only
	// release every version's predictions are in Predictions.
	Latency     []int64 `json:"latency,omitempty"`
	Predictions []int64 `json:"predictions,omitempty"`
	Replaced    []int64 `json:"replaced,omitempty"`
	Labelled    int64   `json:"labelled"`
	Correct     int64   `json:"correct"`
	// Residuals: a regressor's labelled predictions (nil for classifiers).
	Residuals *Residuals `json:"residuals,omitempty"`
}

// MinQualitySamples is the fewest labelled predictions before a release's
// minQuality criterion judges the new version.
const MinQualitySamples = 50

// Residuals are a regressor's predictions whose true value came back
// (POST /feedback with a value), as sums that add over sites and subtract
// over a window: enough for the coefficient of determination R², which a
// release's minQuality criterion reads for a regressor.
type Residuals struct {
	N             int64   `json:"n"`
	SquaredError  float64 `json:"squaredError"`  // Σ (value − prediction)²
	TargetSum     float64 `json:"targetSum"`     // Σ value
	TargetSquares float64 `json:"targetSquares"` // Σ value²
}

// R2 is 1 − SSE/SST over the sums, as scikit-learn's r2_score; ok is
// false when it is undefined (no values, or every value the same).
func (r Residuals) R2() (r2 float64, ok bool) {
	if r.N < 2 {
		return 0, false
	}
	sst := r.TargetSquares - r.TargetSum*r.TargetSum/float64(r.N)
	// Below rounding error of the squares, the targets are constant.
	if !(sst > 1e-12*max(r.TargetSquares, 1)) {
		return 0, false
	}
	return 1 - r.SquaredError/sst, true
}

// Add returns r plus o.
func (r Residuals) Add(o Residuals) Residuals {
	return Residuals{N: r.N + o.N, SquaredError: r.SquaredError + o.SquaredError, TargetSum: r.TargetSum + o.TargetSum, TargetSquares: r.TargetSquares + o.TargetSquares}
}

// Sub returns r minus o: the window between two readings.
func (r Residuals) Sub(o Residuals) Residuals {
	return Residuals{N: r.N - o.N, SquaredError: r.SquaredError - o.SquaredError, TargetSum: r.TargetSum - o.TargetSum, TargetSquares: r.TargetSquares - o.TargetSquares}
}

// MinShiftSamples is the fewest predictions, of the new version and of the
// versions it replaces, before a prediction shift is measured: fewer differ
// by chance.
const MinShiftSamples = 200

// SiteFailure is a site whose agent could not apply its desired state.
type SiteFailure struct {
	Site   string `json:"site"`
	Reason string `json:"reason"`
}

// LeaseRequest names a release's sites for a rollback or finish.
type LeaseRequest struct {
	Release     string   `json:"release"`
	Model       string   `json:"model"`
	Sites       []string `json:"sites"`
	TraceParent string   `json:"traceparent,omitempty"`
}

// ProgressRequest asks how far sites converged on a model version.
type ProgressRequest struct {
	Model   string   `json:"model"`
	Version string   `json:"version"`
	Sites   []string `json:"sites"`
}

// WorkloadRecord is one registered workload version: its manifest exactly as
// uploaded, content-addressed, with what release planning needs of it.
type WorkloadRecord struct {
	Name         string   `json:"name"`
	Version      string   `json:"version"`
	Model        string   `json:"model"`
	Features     []string `json:"features"`
	Digest       string   `json:"digest"` // "sha256:<hex>" of Manifest
	Manifest     string   `json:"manifest"`
	RegisteredAt string   `json:"registeredAt"`
}

// Ref is the record's "name:version".
func (r WorkloadRecord) Ref() WorkloadRef {
	return WorkloadRef{Name: r.Name, Version: r.Version}
}

// Desired is the record as a site's desired state carries it.
func (r WorkloadRecord) Desired() DesiredWorkload {
	return DesiredWorkload{Version: r.Version, Model: r.Model, Digest: r.Digest, Manifest: r.Manifest}
}

// PairingRequest asks what a model is paired with at some sites.
type PairingRequest struct {
	Model string   `json:"model"`
	Sites []string `json:"sites"`
}

// SitePairing is what a release of Model would meet at one site: the
// model's current split there, and the workloads there that call it.
// The split's versions come without their release statements: a pairing
// check reads versions and features, and a plan's pairings for a
// thousand sites would otherwise carry a thousand copies of each
// statement.
type SitePairing struct {
	Site      string           `json:"site"`
	Versions  []DesiredVersion `json:"versions,omitempty"`
	Workloads []PairedWorkload `json:"workloads,omitempty"`
}

// PairedWorkload is a workload at a site and the schema it produces.
// Source is "desired" (a release put it there) or "running" (the site
// reports it, e.g. the version its agent was built with).
type PairedWorkload struct {
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Features []string `json:"features"`
	Source   string   `json:"source"`
}
