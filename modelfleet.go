// Package modelfleet holds the domain of the modelfleet control plane: the
// plain types every other package shares (models, sites, releases), their
// validation, and the small set of error codes mapped to transport status only
// at the edges. It imports only the standard library.
package modelfleet

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
)

// Error codes. Callers switch on ErrorCode(err); transports map them to
// status codes (HTTP 400/404/409/...) at the edge, never in the domain.
const (
	EINVALID      = "invalid"
	ENOTFOUND     = "not_found"
	ECONFLICT     = "conflict"
	EUNAUTHORIZED = "unauthorized" // who is asking is unknown or unproven (HTTP 401)
	EFORBIDDEN    = "forbidden"    // known, but not allowed to do this (HTTP 403)
	ETOOLARGE     = "too_large"
	EINTERNAL     = "internal"
)

// Error is a domain error with a machine-readable code and a message fit for
// the person who sent the input.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given code.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// ErrorMessage returns the message of the first *Error in err's chain, or a
// generic message for internal errors (whose details belong in logs only).
func ErrorMessage(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Message
	default:
		return "internal error"
	}
}

// Azure ML system event types, as Event Grid delivers them.
const (
	EventModelRegistered      = "Microsoft.MachineLearningServices.ModelRegistered"
	EventModelDeployed        = "Microsoft.MachineLearningServices.ModelDeployed"
	EventRunCompleted         = "Microsoft.MachineLearningServices.RunCompleted"
	EventRunStatusChanged     = "Microsoft.MachineLearningServices.RunStatusChanged"
	EventDatasetDriftDetected = "Microsoft.MachineLearningServices.DatasetDriftDetected"
)

// nameRE is what Azure ML accepts for model names (letters, digits, '-', '_',
// '.'; starting with a letter or digit; at most 255 characters). Versions use
// the same alphabet. Keeping our own registry to Azure's rules means a model
// name that works locally works in Azure mode too.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$`)

// ValidateName reports whether s is a valid model name, version or site ID.
// what names the field in the error ("model name", "site id").
func ValidateName(what, s string) error {
	if s == "" {
		return Errorf(EINVALID, "%s is required", what)
	}
	if !nameRE.MatchString(s) || strings.Contains(s, "..") {
		return Errorf(EINVALID, "%s %q is invalid: use letters, digits, '.', '-' and '_', starting with a letter or digit (at most 255 characters)", what, s)
	}
	return nil
}

// ModelRef names one version of one model.
type ModelRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Validate checks both parts of the reference.
func (r ModelRef) Validate() error {
	if err := ValidateName("model name", r.Name); err != nil {
		return err
	}
	return ValidateName("model version", r.Version)
}

func (r ModelRef) String() string { return r.Name + ":" + r.Version }

// Model formats the edge runtime can load.
const (
	FormatLightGBM = "lightgbm" // LightGBM text model file
	FormatXGBoost  = "xgboost"  // XGBoost JSON or UBJSON model (XGBoost >= 1.0)
	FormatONNX     = "onnx"     // ONNX model (ai.onnx and ai.onnx.ml operators; docs/models.md)
	// FormatMLflow is an MLflow model directory packed into one archive
	// (inference/mlflow): its MLmodel names a lightgbm, xgboost or onnx
	// flavour, and its signature is the feature schema.
	FormatMLflow = "mlflow"
)

// Formats lists the model formats the edge runtime loads.
var Formats = []string{FormatLightGBM, FormatXGBoost, FormatONNX, FormatMLflow}

// Feature types a model's schema may declare (an MLflow signature's column
// types) and a workload manifest may give its features. Every feature
// travels as a number; booleans as 0 and 1.
const (
	FeatureDouble  = "double"
	FeatureFloat   = "float"
	FeatureLong    = "long"
	FeatureInteger = "integer"
	FeatureBoolean = "boolean"
)

// FeatureTypes lists the feature types.
var FeatureTypes = []string{FeatureDouble, FeatureFloat, FeatureLong, FeatureInteger, FeatureBoolean}

// FeatureTypeTakes reports whether a model feature of type model takes the
// values of a feature declared as type produced, by MLflow's schema
// enforcement rules: a floating-point feature takes any type but boolean, a
// whole-number one (long, integer) whole numbers only, a boolean one booleans
// only.
// An undeclared type ("") on either side is not checked.
func FeatureTypeTakes(model, produced string) bool {
	switch {
	case model == "" || produced == "" || model == produced:
		return true
	case model == FeatureDouble || model == FeatureFloat:
		return produced != FeatureBoolean
	case model == FeatureLong || model == FeatureInteger:
		return produced == FeatureLong || produced == FeatureInteger
	}
	return false
}

// Tasks a model serves.
const (
	TaskBinary     = "binary"
	TaskMulticlass = "multiclass"
	TaskRegression = "regression"
)

// Validation metrics the validator can compute on a labelled data set:
// AUC and F1 for binary classifiers, accuracy and log-loss for binary and
// multiclass ones, macro-F1 for multiclass ones, RMSE, MAE and R² for
// regressors.
const (
	MetricAUC      = "auc"
	MetricAccuracy = "accuracy"
	MetricF1       = "f1"
	MetricMacroF1  = "macro_f1"
	MetricLogLoss  = "log_loss"
	MetricRMSE     = "rmse"
	MetricMAE      = "mae"
	MetricR2       = "r2"
)

// Metrics lists every validation metric.
var Metrics = []string{MetricAUC, MetricAccuracy, MetricF1, MetricMacroF1, MetricLogLoss, MetricRMSE, MetricMAE, MetricR2}

// LowerIsBetter reports whether a metric is an error (log-loss, RMSE, MAE),
// whose threshold is the highest acceptable value rather than the lowest.
func LowerIsBetter(metric string) bool {
	return metric == MetricLogLoss || metric == MetricRMSE || metric == MetricMAE
}

// Model is one registered model version: its artifact (content-addressed by
// sha256), the feature schema it consumes, and how it is to be validated.
type Model struct {
	ModelRef
	Format      string            `json:"format"`
	Digest      string            `json:"digest"` // "sha256:<hex>" of the artifact
	Size        int64             `json:"size"`
	Features    []string          `json:"features,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Properties  map[string]string `json:"properties,omitempty"`
	Validation  *ValidationSpec   `json:"validation,omitempty"`
	ArtifactURL string            `json:"artifactUrl,omitempty"`
	CreatedAt   string            `json:"createdAt,omitempty"` // RFC 3339
}

// ValidationSpec declares how a model version proves itself before rollout:
// a labelled data set (content-addressed like the artifact), the metric to
// compute on it, and the lowest acceptable value (the highest for an error
// metric: LowerIsBetter).
type ValidationSpec struct {
	DataDigest string  `json:"dataDigest"`
	DataURL    string  `json:"dataUrl,omitempty"`
	Metric     string  `json:"metric"`
	Threshold  float64 `json:"threshold"`
}

// Validate checks a validation spec.
func (v *ValidationSpec) Validate() error {
	switch v.Metric {
	case MetricAUC, MetricAccuracy, MetricF1, MetricMacroF1:
		if v.Threshold < 0 || v.Threshold > 1 {
			return Errorf(EINVALID, "validation threshold %v is out of range: %s is between 0 and 1", v.Threshold, v.Metric)
		}
	case MetricR2:
		if v.Threshold > 1 || math.IsNaN(v.Threshold) || math.IsInf(v.Threshold, 0) {
			return Errorf(EINVALID, "validation threshold %v is out of range: %s is at most 1", v.Threshold, v.Metric)
		}
	case MetricLogLoss, MetricRMSE, MetricMAE:
		if v.Threshold < 0 || math.IsNaN(v.Threshold) || math.IsInf(v.Threshold, 0) {
			return Errorf(EINVALID, "validation threshold %v is out of range: %s is a finite maximum, 0 or more", v.Threshold, v.Metric)
		}
	default:
		return Errorf(EINVALID, "validation metric %q is not supported: use one of %s", v.Metric, strings.Join(Metrics, ", "))
	}
	if !ValidDigest(v.DataDigest) {
		return Errorf(EINVALID, "validation data digest %q is invalid: want sha256:<64 hex digits>", v.DataDigest)
	}
	return nil
}

// Passes reports whether a metric's value meets the threshold: at least
// the threshold, or at most for an error metric.
func (v *ValidationSpec) Passes(value float64) bool {
	if LowerIsBetter(v.Metric) {
		return value <= v.Threshold
	}
	return value >= v.Threshold
}

// Validate checks a model record before it is stored.
func (m *Model) Validate() error {
	if err := m.ModelRef.Validate(); err != nil {
		return err
	}
	if !slices.Contains(Formats, m.Format) && m.Format != FormatOIP {
		return Errorf(EINVALID, "model format %q is not supported: use one of %s, or %s (an external model server)", m.Format, strings.Join(Formats, ", "), FormatOIP)
	}
	if _, err := ServerOf(m); err != nil {
		return err
	}
	if !ValidDigest(m.Digest) {
		return Errorf(EINVALID, "model digest %q is invalid: want sha256:<64 hex digits>", m.Digest)
	}
	seen := make(map[string]bool, len(m.Features))
	for _, f := range m.Features {
		if f == "" || seen[f] {
			return Errorf(EINVALID, "model features must be unique and non-empty (got %q)", f)
		}
		seen[f] = true
	}
	if m.Validation != nil {
		return m.Validation.Validate()
	}
	return nil
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// ValidDigest reports whether d is "sha256:" followed by 64 lowercase hex digits.
func ValidDigest(d string) bool { return digestRE.MatchString(d) }

// Site is one factory edge site: where its agent's inference router answers,
// its labels, and what it reported serving last. TaskQueue is required but
// names a queue nothing polls: sites run no Temporal worker (see
// SiteTaskQueue).
type Site struct {
	ID        string            `json:"id"`
	RouterURL string            `json:"routerUrl"`
	TaskQueue string            `json:"taskQueue"`
	Labels    map[string]string `json:"labels,omitempty"`
	// Driver is how releases reach the site: "agent" (default: its own edge
	// agent pulls its desired state), "amlarc" (Azure ML Kubernetes online
	// endpoints on an Arc-connected cluster) or "gitops" (manifests committed
	// to a fleet repository that Flux reconciles).
	Driver string `json:"driver,omitempty"`
	// Window, if set, is when the site may be changed; the site owns it.
	// No window means any time.
	Window   *MaintenanceWindow `json:"window,omitempty"`
	Serving  []ServedModel      `json:"serving"`
	LastSeen string             `json:"lastSeen,omitempty"` // RFC 3339, set by the directory
}

// Validate checks a site registration.
func (s *Site) Validate() error {
	if err := ValidateName("site id", s.ID); err != nil {
		return err
	}
	if s.TaskQueue == "" {
		return Errorf(EINVALID, "site %q: task queue is required", s.ID)
	}
	if s.RouterURL != "" && !strings.HasPrefix(s.RouterURL, "http://") && !strings.HasPrefix(s.RouterURL, "https://") {
		return Errorf(EINVALID, "site %q: router url %q must be http(s)", s.ID, s.RouterURL)
	}
	return nil
}

// MaintenanceWindow is a recurring period in which a site accepts changes:
// it opens on a cron schedule (5 fields: minute hour day-of-month month
// day-of-week) in the site's IANA time zone and stays open for Duration.
// package rollout does the arithmetic.
type MaintenanceWindow struct {
	Schedule string `json:"schedule"`           // e.g. "0 22 * * 1-5"
	Duration string `json:"duration"`           // e.g. "2h"
	TimeZone string `json:"timeZone,omitempty"` // e.g. "Europe/Berlin"; default UTC
}

// SiteTaskQueue is what an agent records as its site's TaskQueue. Sites once
// ran a Temporal worker on it; none does now, and nothing schedules on it.
func SiteTaskQueue(siteID string) string { return "modelfleet-site-" + siteID }

// CloudTaskQueue is the task queue of the cloud worker (workflows and cloud
// activities).
const CloudTaskQueue = "modelfleet-cloud"

// ServedModel is one model version loaded in a site's inference router.
type ServedModel struct {
	ModelRef
	Digest   string `json:"digest"`
	LoadedAt string `json:"loadedAt,omitempty"` // RFC 3339
}

// ReleaseWorkflowID is the workflow ID of the release of one model version.
// Deriving it from the event's subject is what makes a redelivered
// ModelRegistered event harmless: Temporal refuses a second start.
func ReleaseWorkflowID(r ModelRef) string { return "release/" + r.Name + "/" + r.Version }

// WorkloadReleaseWorkflowID is the workflow ID of the release of one
// workload version alone, to the sites of the model it calls. Model versions
// cannot contain '/', so it never equals a ReleaseWorkflowID, and one
// workload version is released once per model.
func WorkloadReleaseWorkflowID(model string, w WorkloadRef) string {
	return "release/" + model + "/workload/" + w.Name + "/" + w.Version
}

// SameContent reports, as an ECONFLICT naming what differs, how a
// registration of an existing version differs from the stored one in what a
// release depends on: the artifact, its format and feature schema, its
// validation gate. Tags and other properties are informational; the stored
// ones stand. what names the registry's kind of record ("model").
func SameContent(what string, old, m Model) error {
	ref := fmt.Sprintf("%s %q version %q already exists", what, old.Name, old.Version)
	if old.Digest != m.Digest {
		return Errorf(ECONFLICT, "%s with digest %s", ref, old.Digest)
	}
	if old.Format != m.Format {
		return Errorf(ECONFLICT, "%s with format %q", ref, old.Format)
	}
	if !slices.Equal(old.Features, m.Features) {
		return Errorf(ECONFLICT, "%s with features %q", ref, old.Features)
	}
	ov, nv := old.Validation, m.Validation
	switch {
	case ov == nil && nv == nil:
		return nil
	case ov == nil:
		return Errorf(ECONFLICT, "%s without validation", ref)
	case nv == nil || ov.DataDigest != nv.DataDigest || ov.Metric != nv.Metric || ov.Threshold != nv.Threshold:
		return Errorf(ECONFLICT, "%s with validation data digest %s, metric %q, threshold %v", ref, ov.DataDigest, ov.Metric, ov.Threshold)
	}
	return nil
}
