package activities

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/modelfleet/modelfleet"
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
func (a *Cloud) validateModule(ctx context.Context, rec modelfleet.WorkloadRecord) error {
	if _, ok := a.validModules.Load(rec.Digest); ok {
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
	if _, err := wasm.Validate(ctx, &m, buf.Bytes()); err != nil {
		return fmt.Errorf("validation of workload %s refused it before any site changed: %w", rec.Ref(), err)
	}
	a.validModules.Store(rec.Digest, true)
	return nil
}
