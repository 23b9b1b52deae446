// Package edge is the agent that runs at a factory edge site: an on-disk model
// store (so a restarted or offline site serves its last good model before it
// connects to anything) and an inference router that serves the loaded models
// over HTTP.
//
// The router serves several versions of a model at once for staged
// rollouts: a weighted split (Agent.SetTraffic, or DeployRequest.Weight),
// sticky by the X-Modelfleet-Route-Key header, a version pinned by the
// X-Modelfleet-Version header, shadow versions that get a mirrored copy of
// the traffic, and API keys per model and per site that rotate without a
// restart: from a mounted keys file (Config.KeysFile), the desired state
// (Agent.SetDesiredKeys) or set locally (Agent.SetKeys), first wins per
// scope (apikeys.go). Splits and key hashes are persisted with the models,
// so a restart keeps them.
//
// The package does not import the model runtime. The binary wires a Loader and
// a Vectorizer in (inference.Load and inference.Vector), which keeps the agent
// testable with a fake Scorer and independent of the runtime's build.
package edge

import (
	"context"
	"io"
	"slices"
	"time"

	"github.com/modelfleet/modelfleet"
)

// Scorer is one loaded model, as the router needs it.
type Scorer interface {
	// Predict scores one ordered feature row: for a binary model it returns
	// the probability of the positive class, for a multiclass one the most
	// probable class, for a regressor the value.
	Predict(x []float64) (float64, error)
	// Probabilities appends each class's probability to dst (a multiclass
	// model; the router calls it instead of Predict for one).
	Probabilities(x []float64, dst []float64) ([]float64, error)
	// NumFeatures is the row length Predict expects.
	NumFeatures() int
	// Task is modelfleet.TaskBinary, TaskMulticlass or TaskRegression, and
	// NumClasses the number of classes of a classifier.
	Task() string
	NumClasses() int
}

// Loader parses a model artifact of the given format.
type Loader func(format string, data []byte) (Scorer, error)

// Vectorizer turns a JSON request body into the feature row of a model whose
// declared feature names are features, in that order. Its error messages go
// back to the caller as they are, so they must be fit for a person to read.
// It must not keep body: the router reads request bodies into buffers it
// reuses.
type Vectorizer func(features []string, body []byte) ([]float64, error)

// FetchFunc writes a model artifact to w (typically an HTTP download of the
// request's ArtifactURL). It may be called again after a failure, so it must
// start from the beginning each time.
type FetchFunc func(ctx context.Context, w io.Writer) error

// DeployRequest asks a site to serve one model version.
type DeployRequest struct {
	Model       modelfleet.ModelRef `json:"model"`
	Digest      string              `json:"digest"` // "sha256:<hex>" of the artifact
	Format      string              `json:"format"`
	ArtifactURL string              `json:"artifactUrl,omitempty"`
	Features    []string            `json:"features"`
	// Weight, when set, adds the version beside those already loaded with
	// this percentage (0-100) of the model's traffic; the others are scaled
	// to share the rest and stay loaded, even at 0, for an instant rollback.
	// nil is the original behaviour: the version takes all the traffic and
	// the other versions are unloaded. Both fields are omitted when unset so
	// that requests recorded in workflow histories encode as before.
	Weight *int `json:"weight,omitempty"`
	// Shadow loads the version with no traffic of its own: it gets a copy of
	// every request another version answers, and its answers are measured,
	// never returned. Weight must then be nil or 0.
	Shadow bool `json:"shadow,omitempty"`
	// Size, when set, is the artifact's signed size: a download stops
	// there, and one of another length fails. Statement is the verified
	// release statement kept beside the artifact (verify.go).
	Size      int64                `json:"size,omitempty"`
	Statement *modelfleet.Envelope `json:"statement,omitempty"`
	// Server, with Format modelfleet.FormatOIP, is the external model
	// server the version runs in; the artifact is its packed model
	// directory (servers.go).
	Server *modelfleet.ModelServer `json:"server,omitempty"`
}

// DeployResult reports what a Deploy did.
type DeployResult struct {
	Site   string              `json:"site"`
	Model  modelfleet.ModelRef `json:"model"`
	Digest string              `json:"digest"`
	// Changed is false when the site was already serving that digest:
	// deploy activities are retried, and a retry must be a no-op.
	Changed  bool      `json:"changed"`
	LoadedAt time.Time `json:"loadedAt"`
}

// Validate checks a deploy request before anything is downloaded. Name,
// version and digest end up in file paths, so this is also what keeps the
// store inside its directory.
func (r *DeployRequest) Validate() error {
	if err := r.Model.Validate(); err != nil {
		return err
	}
	if !modelfleet.ValidDigest(r.Digest) {
		return modelfleet.Errorf(modelfleet.EINVALID, "model %s: digest %q is invalid: want sha256:<64 hex digits>", r.Model, r.Digest)
	}
	if r.Format == "" {
		return modelfleet.Errorf(modelfleet.EINVALID, "model %s: format is required", r.Model)
	}
	if len(r.Features) == 0 {
		return modelfleet.Errorf(modelfleet.EINVALID, "model %s: features are required: the router vectorises requests by name", r.Model)
	}
	seen := make(map[string]bool, len(r.Features))
	for _, f := range r.Features {
		if f == "" || seen[f] {
			return modelfleet.Errorf(modelfleet.EINVALID, "model %s: features must be unique and non-empty (got %q)", r.Model, f)
		}
		seen[f] = true
	}
	if r.Weight != nil && (*r.Weight < 0 || *r.Weight > 100) {
		return modelfleet.Errorf(modelfleet.EINVALID, "model %s: weight %d is out of range: want a percentage from 0 to 100", r.Model, *r.Weight)
	}
	if (r.Server != nil) != (r.Format == modelfleet.FormatOIP) {
		return modelfleet.Errorf(modelfleet.EINVALID, "model %s: format %q and a model server go together", r.Model, modelfleet.FormatOIP)
	}
	if err := r.Server.Validate(); err != nil {
		return modelfleet.Errorf(modelfleet.EINVALID, "model %s: %s", r.Model, modelfleet.ErrorMessage(err))
	}
	if r.Shadow && r.Weight != nil && *r.Weight != 0 {
		return modelfleet.Errorf(modelfleet.EINVALID, "model %s: a shadow version takes no traffic of its own: weight must be 0 or unset, got %d", r.Model, *r.Weight)
	}
	return nil
}

// replaces reports whether deploying r replaces every loaded version of its
// model (the behaviour from before traffic splitting).
func (r *DeployRequest) replaces() bool { return r.Weight == nil && !r.Shadow }

// same reports whether two requests would produce the same served model.
func (r *DeployRequest) same(o *DeployRequest) bool {
	return r.Model == o.Model && r.Digest == o.Digest && r.Format == o.Format && slices.Equal(r.Features, o.Features) && r.Server.Equal(o.Server)
}
