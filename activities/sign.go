package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/modelfleet/modelfleet"
)

// SignRequest asks for the signed statement of a validated version.
type SignRequest struct {
	Release string           `json:"release"` // the release's workflow ID
	Report  ValidationReport `json:"report"`
}

// SignRelease signs the in-toto statement a site verifies before it loads
// the version: the artifact's digest and size, the validation result, the
// baseline, the workload version it is released with and its manifest's
// digest, the release. Only a passed validation is signed. With no signer
// configured it returns nil: the version travels unsigned, and sites that
// pinned release keys refuse it.
func (a *Cloud) SignRelease(ctx context.Context, req SignRequest) (*modelfleet.Envelope, error) {
	m, res := req.Report.Model, req.Report.Result
	if !res.Passed {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("sign %s: validation did not pass", m.ModelRef), "InvalidInput", nil)
	}
	if !modelfleet.ValidDigest(m.Digest) || m.Size <= 0 {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("sign %s: digest %q, size %d: nothing to sign", m.ModelRef, m.Digest, m.Size), "InvalidInput", nil)
	}
	if a.Signer == nil {
		return nil, nil
	}
	p := modelfleet.ReleasePredicate{
		Model: m.Name, Version: m.Version, Format: m.Format, Features: m.Features,
		Validation: res, Baseline: req.Report.Baseline, Release: req.Release,
		SignedAt: time.Now().UTC().Truncate(time.Second),
	}
	var err error
	if p.Server, err = modelfleet.ServerOf(&m); err != nil {
		return nil, nonRetryableIfInvalid(fmt.Errorf("sign %s: %w", m.ModelRef, err))
	}
	w, err := a.releaseWorkload(ctx, m)
	if err != nil {
		return nil, nonRetryableIfInvalid(fmt.Errorf("sign %s: %w", m.ModelRef, err))
	}
	if w != nil {
		p.Workload = &modelfleet.SignedWorkload{Name: w.Name, Version: w.Version, ManifestDigest: w.Digest}
	}
	env, err := a.Signer.SignRelease(ctx, modelfleet.NewReleaseStatement(m.Digest, m.Size, p))
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", m.ModelRef, err)
	}
	return env, nil
}

// WorkloadSignRequest asks for the signed statement of a workload version
// released alone.
type WorkloadSignRequest struct {
	Release  string                 `json:"release"`
	Model    string                 `json:"model"`
	Workload modelfleet.WorkloadRef `json:"workload"`
}

// SignWorkloadRelease signs the statement a site verifies before it runs
// the workload version's manifest. With no signer configured it returns
// nil: the workload travels unsigned, and sites that pinned release keys
// refuse it.
func (a *Cloud) SignWorkloadRelease(ctx context.Context, req WorkloadSignRequest) (*modelfleet.Envelope, error) {
	if a.Signer == nil {
		return nil, nil
	}
	rec, err := a.workloadRecord(ctx, req.Model, req.Workload)
	if err != nil {
		return nil, nonRetryableIfInvalid(err)
	}
	env, err := a.Signer.SignWorkload(ctx, modelfleet.NewWorkloadStatement(rec, req.Release, time.Now().UTC().Truncate(time.Second)))
	if err != nil {
		return nil, fmt.Errorf("sign workload %s: %w", req.Workload, err)
	}
	return env, nil
}

// carriedWorkloadStatement signs the workload a model release carries, so
// that it stays vouched for at the sites after later releases of the model
// replace the version whose statement names it (nil without a workload or
// a signer). Signed once per release and workload version.
func (a *Cloud) carriedWorkloadStatement(ctx context.Context, req modelfleet.StepRequest) (*modelfleet.Envelope, error) {
	if req.Workload == nil || a.Signer == nil {
		return nil, nil
	}
	key := req.Release + "|" + req.Workload.Ref().String()
	if env, ok := a.workloadStatements.Load(key); ok {
		return env.(*modelfleet.Envelope), nil
	}
	env, err := a.Signer.SignWorkload(ctx, modelfleet.NewWorkloadStatement(*req.Workload, req.Release, time.Now().UTC().Truncate(time.Second)))
	if err != nil {
		return nil, fmt.Errorf("sign workload %s: %w", req.Workload.Ref(), err)
	}
	a.workloadStatements.Store(key, env)
	return env, nil
}
