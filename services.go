// This file declares the services the control plane's activities use. The
// implementations live at the edges (registry, fleet, drivers, training,
// orchestrator), each with a `var _ modelfleet.X = (*Impl)(nil)` beside it,
// and package app wires them in.

package modelfleet

import (
	"context"
	"io"
)

// Registry is what validation needs of a model registry: a version's record
// and its artifact, the download verified against digest. The embedded
// registry (registry.Client) and Azure ML (registry/azureml) are two.
type Registry interface {
	Get(ctx context.Context, name, version string) (Model, error)
	Download(ctx context.Context, url, digest string, w io.Writer) (int64, error)
}

// RetrainRegistry is what retraining needs of a model registry besides
// reading: list the versions, and register a new one (which emits
// ModelRegistered, and so starts its release). created is false when the
// same content was registered before.
type RetrainRegistry interface {
	Registry
	List(ctx context.Context) ([]Model, error)
	Register(ctx context.Context, m Model, artifactPath, validationPath string) (out Model, created bool, err error)
}

// Champions tells which version of a model is the one in production: the
// champion every challenger must beat. "" means the model has none yet.
type Champions interface {
	Champion(ctx context.Context, model string) (version string, err error)
}

// FleetSteps is what a release needs of the fleet directory, besides the
// model's rollout policy: the sites, the steps and leases that change their
// desired state, how far they converged, and the registered workloads a
// release carries. fleet.Client (over HTTP) and fleet.Directory serve it.
type FleetSteps interface {
	List(ctx context.Context) ([]Site, error)
	Step(ctx context.Context, req StepRequest) (StepResult, error)
	Rollback(ctx context.Context, req LeaseRequest) (StepResult, error)
	Finish(ctx context.Context, req LeaseRequest) (StepResult, error)
	Progress(ctx context.Context, req ProgressRequest) (Progress, error)
	Workload(ctx context.Context, name, version string) (WorkloadRecord, error)
	Pairings(ctx context.Context, req PairingRequest) ([]SitePairing, error)
}

// ArtifactMirror stores an artifact where the sites can download it (the
// gateway) and returns its URL there.
type ArtifactMirror interface {
	MirrorArtifact(ctx context.Context, digest string, data []byte) (url string, err error)
}

// PlanChecker asks the sites' deployment drivers, before a release changes
// anything, whether releasing nv of model to sites fits their hard limits
// (Azure ML's endpoint quotas, renderable manifests); an EINVALID error
// refuses the release. drivers.Check is the implementation.
type PlanChecker interface {
	CheckPlan(ctx context.Context, model string, nv DesiredVersion, sites []Site) error
}
