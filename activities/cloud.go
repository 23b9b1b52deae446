// Package activities holds the Temporal activities: the only place the
// release workflows touch the outside world. They all run on the cloud
// worker; sites run no activities (they pull their desired state from the
// gateway). Every activity is idempotent: Temporal retries them.
package activities

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"

	"go.temporal.io/sdk/temporal"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
)

// DefaultMaxArtifactBytes bounds what validation loads into memory.
const DefaultMaxArtifactBytes = 512 << 20

// Cloud holds the clients the cloud activities use. The cloud worker
// registers one instance.
type Cloud struct {
	Registry modelfleet.Registry
	Fleet    Fleet
	// MaxArtifactBytes bounds a model or data set downloaded for validation
	// (default DefaultMaxArtifactBytes).
	MaxArtifactBytes int64
	// Baselines stores each validated version's baseline for the sites and
	// the drift monitor. Nil: versions get no baseline (counts only).
	Baselines Baselines
	// stepWorkloads caches each version's carried workload for ApplyStep
	// (modelfleet.ModelRef -> *modelfleet.WorkloadRecord).
	stepWorkloads sync.Map
	// workloadStatements caches the signed statement of each workload a
	// release carries (release + "|" + workload ref -> *Envelope).
	workloadStatements sync.Map

	// Artifacts mirrors artifacts the sites cannot fetch themselves (an
	// azureml:// address) at the gateway. Nil: none is mirrored.
	Artifacts modelfleet.ArtifactMirror
	// MirrorArtifacts mirrors every artifact, so that the sites download
	// from the gateway alone.
	MirrorArtifacts bool
	// Drivers checks each release's plan with the sites' deployment drivers
	// (drivers.Check). Nil: no check.
	Drivers modelfleet.PlanChecker
	// Signer signs each validated version's release statement
	// (SignRelease). Nil: versions travel unsigned.
	Signer modelfleet.ReleaseSigner
	// Modules reads the WebAssembly modules of the workloads releases
	// carry, for validation (workload_module.go). Nil: a release carrying
	// a workload whose manifest names a module is refused.
	Modules WorkloadModules
	// validModules remembers the workload manifests (by digest) whose
	// module passed validation: a manifest and its module never change.
	validModules sync.Map
}

// ValidationReport is what ValidateModel returns: the model record (digest,
// artifact URL, features: what the sites need to deploy it) and the result.
type ValidationReport struct {
	Model  modelfleet.Model            `json:"model"`
	Result modelfleet.ValidationResult `json:"result"`
	// Baseline is the digest of the version's baseline, built from the
	// validation data ("" when it has none).
	Baseline string `json:"baseline,omitempty"`
}

// ValidateModel fetches a model version from the registry, verifies its
// digest, loads it in the same runtime the edge uses, scores the declared
// validation set and compares the declared metric with its threshold. A
// model that loads but misses its threshold is a result (Passed=false), not
// an error: retrying would not change it.
func (a *Cloud) ValidateModel(ctx context.Context, ref modelfleet.ModelRef) (ValidationReport, error) {
	defer keepAlive(ctx)()
	m, err := a.Registry.Get(ctx, ref.Name, ref.Version)
	if err != nil {
		err = fmt.Errorf("validate %s: %w", ref, err)
		if modelfleet.ErrorCode(err) == modelfleet.EINVALID {
			// The registry's record cannot be used (a missing digest, say):
			// asking again returns the same.
			return ValidationReport{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidModel", err)
		}
		return ValidationReport{}, err
	}
	artifact, err := a.download(ctx, m.ArtifactURL, m.Digest)
	if err != nil {
		return ValidationReport{}, fmt.Errorf("validate %s: artifact: %w", ref, err)
	}
	// The size the release signs is that of the bytes verified here: a
	// site stops any download of the artifact there.
	m.Size = int64(len(artifact))
	if m.ArtifactURL, err = a.reachable(ctx, m.ArtifactURL, m.Digest, artifact); err != nil {
		return ValidationReport{}, fmt.Errorf("validate %s: %w", ref, err)
	}
	if m.Format == modelfleet.FormatOIP {
		return ValidationReport{Model: m, Result: validateServed(&m)}, nil
	}
	model, err := inference.Load(m.Format, artifact)
	if err != nil {
		return ValidationReport{Model: m, Result: modelfleet.ValidationResult{Note: "model does not load: " + err.Error()}}, nil
	}
	if note, err := a.schemaNote(ctx, m, model); err != nil || note != "" {
		return ValidationReport{Model: m, Result: modelfleet.ValidationResult{Note: note}}, err
	}
	if names := model.FeatureNames(); len(m.Features) == 0 && !inference.Unnamed(names) {
		// The artifact's own schema (an MLflow signature, say) is what the
		// sites vectorise requests by when the record declares none.
		m.Features = names
	}
	if m.Validation == nil {
		return ValidationReport{Model: m, Result: modelfleet.ValidationResult{Passed: true, Note: "no validation data declared: loaded and checked the feature schema only"}}, nil
	}
	data, err := a.download(ctx, m.Validation.DataURL, m.Validation.DataDigest)
	if err != nil {
		return ValidationReport{}, fmt.Errorf("validate %s: validation data: %w", ref, err)
	}
	ds, err := inference.ReadLabelled(bytes.NewReader(data), m.Features, model.Task())
	if err != nil {
		return ValidationReport{Model: m, Result: modelfleet.ValidationResult{Note: "validation data unusable: " + err.Error()}}, nil
	}
	res := modelfleet.ValidationResult{Metric: m.Validation.Metric, Threshold: m.Validation.Threshold, Rows: len(ds.Y)}
	res.Value, err = inference.Evaluate(model, ds, m.Validation.Metric)
	if err != nil {
		res.Note = "evaluation failed: " + err.Error()
		return ValidationReport{Model: m, Result: res}, nil
	}
	res.Passed = m.Validation.Passes(res.Value)
	if !res.Passed && modelfleet.LowerIsBetter(res.Metric) {
		// The workflow's own message says "below the threshold".
		res.Note = fmt.Sprintf("%s %.4f is above the maximum %.4f on %d rows", res.Metric, res.Value, res.Threshold, res.Rows)
	}
	report := ValidationReport{Model: m, Result: res}
	if res.Passed {
		if report.Baseline, err = a.storeBaseline(ctx, ref, model, ds); err != nil {
			return ValidationReport{}, err
		}
	}
	return report, nil
}

// validateServed is the validation of a version that runs in an external
// model server (FormatOIP): the worker cannot run the server, so it checks
// the server reference only; each site checks that the server and its
// model are ready before the version takes any traffic, and the release's
// criteria judge what it answers.
func validateServed(m *modelfleet.Model) modelfleet.ValidationResult {
	s, err := modelfleet.ServerOf(m)
	if err != nil {
		return modelfleet.ValidationResult{Note: modelfleet.ErrorMessage(err)}
	}
	if m.Validation != nil {
		return modelfleet.ValidationResult{Note: fmt.Sprintf("a version served by model server %q cannot be scored on the worker: remove its validation data", s.Name)}
	}
	return modelfleet.ValidationResult{Passed: true, Note: fmt.Sprintf("runs in model server %q as model %q (%s): not scored on the worker; each site starts the server and waits until it and the model are ready before the version takes traffic", s.Name, s.Model, s.Task)}
}

func (a *Cloud) download(ctx context.Context, url, digest string) ([]byte, error) {
	limit := a.MaxArtifactBytes
	if limit <= 0 {
		limit = DefaultMaxArtifactBytes
	}
	var buf limitedBuffer
	buf.limit = limit
	if _, err := a.Registry.Download(ctx, url, digest, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// limitedBuffer refuses writes past its limit, so a huge artifact fails the
// download instead of exhausting the worker's memory.
type limitedBuffer struct {
	bytes.Buffer
	limit int64
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if int64(b.Len()+len(p)) > b.limit {
		return 0, fmt.Errorf("larger than %d bytes", b.limit)
	}
	return b.Buffer.Write(p)
}

// azureBlob reports an Azure Storage blob URL: readable with an Azure
// identity only, which sites do not have.
func azureBlob(url string) bool {
	host := strings.TrimPrefix(strings.TrimPrefix(url, "https://"), "http://")
	if i := strings.IndexAny(host, "/?"); i >= 0 {
		host = host[:i]
	}
	return strings.HasSuffix(strings.ToLower(host), ".blob.core.windows.net")
}

// reachable returns the URL the sites download the artifact from: its own
// when it is http(s), else the gateway's copy (an Azure ML artifact lives
// in the workspace's blob storage, which an edge agent has no identity
// for).
func (a *Cloud) reachable(ctx context.Context, url, digest string, data []byte) (string, error) {
	web := strings.HasPrefix(url, "http://") || strings.HasPrefix(url, "https://")
	if a.Artifacts == nil || (web && !azureBlob(url) && !a.MirrorArtifacts) {
		return url, nil
	}
	mirrored, err := a.Artifacts.MirrorArtifact(ctx, digest, data)
	if err != nil {
		return "", fmt.Errorf("mirror the artifact at the gateway for the sites: %w", err)
	}
	return mirrored, nil
}
