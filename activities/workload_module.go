package activities

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/workload/spec"
	"github.com/modelfleet/modelfleet/workload/wasm"
)

// WorkloadModules reads the WebAssembly modules registered workloads name
// (fleet.Client: the gateway's artifact store), checked against digest.
type WorkloadModules interface {
	DownloadWorkloadModule(ctx context.Context, digest string, w io.Writer) error
}

// validateModule instantiates the module a workload version names, as a
// site would, and runs the manifest's sample inputs through it
// (wasm.Validate): a malformed module, one of another ABI, or one that
// faults, refuses or writes features outside their ranges fails the
// release (EINVALID, non-retryable) before any site is touched. A manifest
// without a module has nothing to run here: its code is built into the
// sites' agents and checked there.
//
// With model (the release's version, nil in a workload-only release) the
// model also scores every row the module prepares and the module decides on
// its predictions (wasm.ValidateWith).
func (a *Cloud) validateModule(ctx context.Context, rec modelfleet.WorkloadRecord, model *modelfleet.Model) error {
	key := rec.Digest
	if model != nil {
		key += "+" + model.Digest
	}
	if _, ok := a.validModules.Load(key); ok {
		return nil
	}
	m, err := spec.ParseManifest([]byte(rec.Manifest))
	if err != nil {
		return fmt.Errorf("workload %s: %w", rec.Ref(), err)
	}
	if m.Module == nil {
		return nil
	}
	if a.Modules == nil {
		return modelfleet.Errorf(modelfleet.EINVALID, "workload %s names module %s, but this worker has nowhere to read modules from to validate it", rec.Ref(), m.Module.Digest)
	}
	var buf bytes.Buffer
	if err := a.Modules.DownloadWorkloadModule(ctx, m.Module.Digest, &buf); err != nil {
		if modelfleet.ErrorCode(err) == modelfleet.ENOTFOUND {
			return modelfleet.Errorf(modelfleet.EINVALID, "workload %s: module %s is not stored at the gateway (modelfleet workload register --module)", rec.Ref(), m.Module.Digest)
		}
		return fmt.Errorf("workload %s: %w", rec.Ref(), err)
	}
	var score wasm.Scorer
	// An oip version is served by a model server the worker cannot run:
	// the module is checked alone, and the sites' readiness checks and the
	// release's criteria judge the pair.
	if model != nil && model.Format != modelfleet.FormatOIP {
		artifact, err := a.download(ctx, model.ArtifactURL, model.Digest)
		if err != nil {
			return fmt.Errorf("workload %s: model %s: %w", rec.Ref(), model.ModelRef, err)
		}
		im, err := inference.Load(model.Format, artifact)
		if err != nil {
			return modelfleet.Errorf(modelfleet.EINVALID, "workload %s: model %s does not load: %v", rec.Ref(), model.ModelRef, err)
		}
		if im.NumFeatures() != len(m.Features) {
			return modelfleet.Errorf(modelfleet.EINVALID, "workload %s prepares %d features, model %s takes %d", rec.Ref(), len(m.Features), model.ModelRef, im.NumFeatures())
		}
		score = func(row []float64) (float64, int, error) {
			p, err := im.Predict(row)
			switch {
			case err != nil:
				return 0, 0, err
			case im.Task() == modelfleet.TaskRegression:
				return p, -1, nil
			case im.Task() == modelfleet.TaskMulticlass:
				return p, int(p), nil
			}
			return p, int(math.Round(p)), nil
		}
	}
	if _, err := wasm.ValidateWith(ctx, &m, buf.Bytes(), score); err != nil {
		return fmt.Errorf("validation of workload %s refused it before any site changed: %w", rec.Ref(), err)
	}
	a.validModules.Store(key, true)
	return nil
}
