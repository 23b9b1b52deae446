package modelfleet

import (
	"fmt"
	"strings"
	"unicode"
)

// Desired is what a site should serve: for each model, the versions and
// their traffic weights. The orchestrator writes it (a release step, a
// rollback); the site's agent pulls it over an outbound connection and
// converges, also after being offline. Revision increases on every change,
// so an agent knows whether it has caught up.
type Desired struct {
	Site     string                  `json:"site"`
	Revision int64                   `json:"revision"`
	Models   map[string]DesiredModel `json:"models"`
	// Workloads are the workloads the site runs beside its models, by
	// workload name. Absent in documents written before workloads travelled
	// with releases: the site then runs what it was built with.
	Workloads map[string]DesiredWorkload `json:"workloads,omitempty"`
	// ReleaseKeys is the control plane's current release key set, signed
	// (KeySetPayloadType): how a site learns a rotated-in key or a
	// revocation after enrolment. A site takes it only if a key it already
	// trusts signed it, so whoever writes desired states cannot add one.
	ReleaseKeys *Envelope `json:"releaseKeys,omitempty"`
	// APIKeys are the hashes of the API keys the site's inference router
	// asks callers for, site-wide and per model, as an operator set them
	// (PUT /api/apikeys, router_keys.go). Only sha256 hashes travel, never a
	// key. Nil: the control plane sets none, and the router uses the keys
	// the site has (docs/security.md, "Router API keys", for precedence).
	APIKeys *APIKeys `json:"apiKeys,omitempty"`
	// APIKeysStatement is the gateway's signature of APIKeys for this site
	// (router_keys_statement.go): a site that pinned release keys applies
	// APIKeys only with it. Absent from desired states written before key
	// sets were signed, or by a gateway without release keys.
	APIKeysStatement *Envelope `json:"apiKeysStatement,omitempty"`
	// Statements carries, in an agent's answer, each release statement
	// its versions name by StatementRef, once (ResolveStatements puts them
	// back). Every other reader gets the statements in their versions.
	Statements map[string]*Envelope `json:"statements,omitempty"`
}

// ForEachVersion calls f with every version ds names: each model's split
// and the split it served before its release (DesiredModel.Previous).
func (ds *Desired) ForEachVersion(f func(*DesiredVersion)) {
	for _, dm := range ds.Models {
		for i := range dm.Versions {
			f(&dm.Versions[i])
		}
		for i := range dm.Previous {
			f(&dm.Previous[i])
		}
	}
}

// ResolveStatements puts each statement Statements carries, or else held
// holds (those the agent named as held when it asked), into the versions
// that name it by StatementRef, drops Statements, and returns the
// statements it put, by ref: what the agent holds for its next poll. A
// version naming a statement neither has is an error: its statement was
// lost on the way, and without it a signed site refuses the version
// anyway.
func (ds *Desired) ResolveStatements(held map[string]*Envelope) (map[string]*Envelope, error) {
	var err error
	resolved := map[string]*Envelope{}
	ds.ForEachVersion(func(v *DesiredVersion) {
		if v.StatementRef == "" {
			return
		}
		env, ok := ds.Statements[v.StatementRef]
		if !ok || env == nil {
			env, ok = held[v.StatementRef]
		}
		if !ok || env == nil {
			if err == nil {
				err = Errorf(EINVALID, "desired state: version %s names release statement %s, which it does not carry", clip(v.Version, 80), clip(v.StatementRef, 80))
			}
			return
		}
		resolved[v.StatementRef] = env
		v.Statement, v.StatementRef = env, ""
	})
	ds.Statements = nil
	return resolved, err
}

// DesiredModel is one model's desired versions at a site, and which release
// holds the site's lease on it: one release at a time changes a (site,
// model), so two releases can never interleave their steps there.
type DesiredModel struct {
	Versions []DesiredVersion `json:"versions"`
	Release  string           `json:"release,omitempty"` // lease holder, "" when free
	// Previous is what the site served before Release touched it, kept so a
	// rollback restores exactly that.
	Previous []DesiredVersion `json:"previous,omitempty"`
	// TraceParent is the W3C trace context of the change, so the site's
	// apply joins the trace that began with the registration event.
	TraceParent string `json:"traceparent,omitempty"`
	// Wave and ApprovedBy say which wave of Release made the change and who
	// approved it past its gate, if anyone: what a GitOps commit message
	// records.
	Wave       string `json:"wave,omitempty"`
	ApprovedBy string `json:"approvedBy,omitempty"`
}

// DesiredVersion is one version in a site's traffic split.
type DesiredVersion struct {
	Version     string   `json:"version"`
	Digest      string   `json:"digest"`
	Format      string   `json:"format"`
	ArtifactURL string   `json:"artifactUrl"`
	Features    []string `json:"features,omitempty"`
	Weight      int      `json:"weight"`
	// Baseline is the digest of the version's monitoring baseline (fleet
	// directory, /api/baselines/{model}/{version}): the bins the site
	// counts inputs and predictions into. "" when it has none.
	Baseline string `json:"baseline,omitempty"`
	// Size is the artifact's size in bytes, and Statement the release's
	// signed statement about it (release_statement.go): a site that pinned
	// release keys loads the version only if a trusted key signed exactly
	// this artifact as this version. Absent from versions released before
	// releases were signed.
	Size      int64     `json:"size,omitempty"`
	Statement *Envelope `json:"statement,omitempty"`
	// StatementRef, instead of Statement, names the statement by its
	// StatementRef (the envelope's digest) where it is kept once for
	// every site: in the gateway's stored desired states, and in an
	// agent's answer, which carries it in Desired.Statements.
	StatementRef string `json:"statementRef,omitempty"`
	// Server, with Format FormatOIP, is the external model server the
	// version runs in (model_server.go); the artifact is its packed model
	// directory. Nil for a built-in format.
	Server *ModelServer `json:"server,omitempty"`
}

// ValidateSplit checks a traffic split: distinct versions, weights 0..100
// summing to 100 (or an empty split: the model is not served).
func ValidateSplit(vs []DesiredVersion) error {
	if len(vs) == 0 {
		return nil
	}
	sum := 0
	seen := map[string]bool{}
	for _, v := range vs {
		if err := ValidateName("model version", v.Version); err != nil {
			return err
		}
		if seen[v.Version] {
			return Errorf(EINVALID, "version %q appears twice in the traffic split", v.Version)
		}
		seen[v.Version] = true
		if v.Weight < 0 || v.Weight > 100 {
			return Errorf(EINVALID, "version %q weight %d is out of range 0..100", v.Version, v.Weight)
		}
		if !ValidDigest(v.Digest) {
			return Errorf(EINVALID, "version %q digest %q is invalid", v.Version, v.Digest)
		}
		if v.Baseline != "" && !ValidDigest(v.Baseline) {
			return Errorf(EINVALID, "version %q baseline digest %q is invalid", v.Version, v.Baseline)
		}
		if (v.Server != nil) != (v.Format == FormatOIP) {
			return Errorf(EINVALID, "version %q: format %q and a model server go together", v.Version, FormatOIP)
		}
		if err := v.Server.Validate(); err != nil {
			return Errorf(EINVALID, "version %q: %s", v.Version, ErrorMessage(err))
		}
		sum += v.Weight
	}
	if sum != 100 {
		return Errorf(EINVALID, "traffic weights sum to %d, want 100", sum)
	}
	return nil
}

// PropWorkload is the model property ("name:version") naming the workload
// version a model version is released with. The model card's workload key
// sets it; a release of that model version carries the workload to its sites.
const PropWorkload = "modelfleet.workload"

// PropUnitPrefix prefixes the model properties that give a feature's unit
// ("modelfleet.unit.temperature_c" = "degC"): the model card's units key
// sets them (an Azure ML model version's properties may carry them too),
// and a release refuses a workload that declares another unit for the
// feature (spec.CheckUnits).
const PropUnitPrefix = "modelfleet.unit."

// MaxUnit bounds a unit's length.
const MaxUnit = 32

// FeatureUnits returns the feature units in a model's properties
// (PropUnitPrefix), nil if there are none.
func FeatureUnits(props map[string]string) map[string]string {
	var out map[string]string
	for k, v := range props {
		if f, ok := strings.CutPrefix(k, PropUnitPrefix); ok && f != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[f] = v
		}
	}
	return out
}

// ValidateUnit checks a unit as written: 1 to MaxUnit printable
// characters without spaces at either end.
func ValidateUnit(feature, unit string) error {
	if unit == "" || len(unit) > MaxUnit || strings.TrimSpace(unit) != unit || strings.IndexFunc(unit, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return Errorf(EINVALID, "feature %q: unit %q: want 1 to %d printable characters", feature, unit, MaxUnit)
	}
	return nil
}

// PropGateMargin is the model property that sets a version's margin over
// the champion at the release's champion gate (a number from 0 to 1;
// default 0: no worse than the champion). Retrained versions carry the
// margin they won by.
const PropGateMargin = "modelfleet.gate.margin"

// WorkloadRef names one version of one workload.
type WorkloadRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

func (r WorkloadRef) String() string { return r.Name + ":" + r.Version }

// ParseWorkloadRef reads "name:version".
func ParseWorkloadRef(s string) (WorkloadRef, error) {
	name, version, ok := strings.Cut(s, ":")
	if !ok {
		return WorkloadRef{}, Errorf(EINVALID, "workload %q must be written name:version", s)
	}
	r := WorkloadRef{Name: name, Version: version}
	if err := ValidateName("workload name", name); err != nil {
		return r, err
	}
	return r, ValidateName("workload version", version)
}

// DesiredWorkload is the workload version a site should run, carried by the
// release of the model it calls. The manifest travels whole, so an offline
// site has all it needs when it returns; the code that prepares features is
// built into the site's agent and checked against the manifest there, or is
// the WebAssembly module the manifest names by digest (module.digest), which
// the site downloads from the gateway and checks against that digest.
type DesiredWorkload struct {
	Version  string `json:"version"`
	Model    string `json:"model"`    // the model the workload calls
	Digest   string `json:"digest"`   // "sha256:<hex>" of Manifest
	Manifest string `json:"manifest"` // the workload.yaml as registered
	// Release holds the lease, like DesiredModel.Release: it is the release
	// of Model that brought this version. Previous is what ran before it
	// (nil: nothing was released there, the site runs its built-in default).
	Release     string           `json:"release,omitempty"`
	Previous    *DesiredWorkload `json:"previous,omitempty"`
	TraceParent string           `json:"traceparent,omitempty"`
	// Statement is the signed statement of a workload released alone
	// (workload_statement.go); one carried by a model release is vouched
	// for by the model version's statement instead.
	Statement *Envelope `json:"statement,omitempty"`
}

// ActualWorkload is a workload as the site runs it.
type ActualWorkload struct {
	Version  string   `json:"version"`
	Model    string   `json:"model"`
	Features []string `json:"features,omitempty"` // the schema it produces
	State    string   `json:"state,omitempty"`
	Error    string   `json:"error,omitempty"` // why the last apply failed, if it did
}

// Actual is what a site's agent reports after applying a Desired revision.
type Actual struct {
	Site     string                 `json:"site"`
	Revision int64                  `json:"revision"` // the Desired revision applied
	Models   map[string]ActualModel `json:"models"`
	// Workloads the site runs, by name (absent from agents without any).
	Workloads map[string]ActualWorkload `json:"workloads,omitempty"`
	// SiteRecord is the site's own directory record (router URL, task
	// queue, labels, what it serves): the report is also the agent's
	// heartbeat. The directory stores both in one transaction, and a
	// report with a record registers a site it does not know yet. Nil: the
	// site must already be registered (PUT /api/sites/{id}).
	SiteRecord *Site `json:"siteRecord,omitempty"`
	// APIKeysError says why the site refused the router API keys of its
	// desired state (unsigned, signed by a key it does not trust, for
	// another site or set, older than the keys in force); the keys in
	// force stay. "" when it took them.
	APIKeysError string `json:"apiKeysError,omitempty"`
}

// ActualModel is one model as the site serves it, with the outcome of the
// last apply and the router's per-version figures since the version loaded.
type ActualModel struct {
	Versions []ServedVersion `json:"versions"`
	Error    string          `json:"error,omitempty"` // why the last apply failed, if it did
}

// ServedVersion is one loaded version with its weight and live figures.
type ServedVersion struct {
	Version      string  `json:"version"`
	Digest       string  `json:"digest"`
	Weight       int     `json:"weight"`
	Requests     int64   `json:"requests"`
	Errors       int64   `json:"errors"`
	P99LatencyMs float64 `json:"p99LatencyMs,omitempty"`
	// Predictions counts the version's predictions over PredictionBins
	// since it loaded: what a release's prediction-shift criterion
	// compares with the version it replaces.
	Predictions []int64 `json:"predictions,omitempty"`
	// Labelled counts the version's predictions whose ground truth came
	// back (POST /feedback at the site's router), Correct those it got
	// right: what a release's minQuality criterion reads.
	Labelled int64 `json:"labelled,omitempty"`
	Correct  int64 `json:"correct,omitempty"`
	// Residuals sum a regressor's predictions whose true value came back
	// (POST /feedback with a value): its minQuality is R² over them.
	Residuals *Residuals `json:"residuals,omitempty"`
	// Latency counts the version's score requests by duration over
	// LatencyBuckets (a last bin takes everything slower), and Epoch
	// identifies the run of the counters (the agent's start, unix
	// nanoseconds): every figure above is cumulative within one epoch, so
	// the control plane measures a bake window as the difference of two
	// reports with the same epoch. Absent from agents older than the window
	// analysis, and from drivers that measure nothing.
	Latency []int64 `json:"latency,omitempty"`
	Epoch   int64   `json:"epoch,omitempty"`
}

// LatencyBuckets are the upper edges, in seconds, of the bins a site counts
// score durations into (a last bin takes everything above the last edge):
// 0.1 ms doubling to 3.3 s. Tree ensembles answer in well under a
// millisecond; the upper bins are for big bodies on slow links.
var LatencyBuckets = []float64{
	0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128,
	0.0256, 0.0512, 0.1024, 0.2048, 0.4096, 0.8192, 1.6384, 3.2768,
}

// PredictionBins are the upper edges of the bins a site counts predicted
// probabilities into (a last bin takes everything above the last edge):
// ten bins of 0.1 over [0, 1].
var PredictionBins = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}

// SplitString renders a split as "2:10,1:90" for logs and status lines.
func SplitString(vs []DesiredVersion) string {
	s := ""
	for i, v := range vs {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("%s:%d", v.Version, v.Weight)
	}
	return s
}
