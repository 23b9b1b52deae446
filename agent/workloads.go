package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/workload"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// swapTimeout bounds one workload version swap at a site: the new version
// must become ready (its router serves its model) and the old one drain.
const swapTimeout = 2 * time.Minute

// WorkloadHost runs one workload at a site: the code the agent is built
// with, the version that code runs when no release has set one (def), and
// the supervisor that swaps versions without losing a message.
type WorkloadHost struct {
	code workload.Code
	def  workload.Program
	sup  *workload.Supervisor

	mu      sync.Mutex
	started bool             // the supervisor runs (swaps go through it)
	current workload.Program // running, or to start with
	digest  string           // desired manifest digest applied; "" is def
	lastErr string
}

// workloadHosts maps an *Edge to its *WorkloadHost: the shop floor starts
// workloads beside agents, and an agent without one runs no workloads.
var workloadHosts sync.Map

// HostWorkload attaches a supervised workload to e's pull loop; the
// returned func detaches it.
func HostWorkload(e *Edge, code workload.Code, def workload.Program, sup *workload.Supervisor) (*WorkloadHost, func()) {
	h := &WorkloadHost{code: code, def: def, sup: sup, current: def}
	workloadHosts.Store(e, h)
	return h, func() { workloadHosts.CompareAndDelete(e, h) }
}

// Run starts the workload once the site serves the model it calls, so a
// fresh site does not dead-letter every reading before its first release.
func (h *WorkloadHost) Run(ctx context.Context, e *Edge) {
	if !waitServes(ctx, e, h.model()) {
		return
	}
	h.mu.Lock()
	h.started = true
	p := h.current
	h.mu.Unlock()
	_ = h.sup.Run(ctx, p)
}

func (h *WorkloadHost) model() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.current.Manifest.Model
}

// apply makes the host run dw (nil: the built-in version). The manifest is
// checked against its digest and the agent's code before anything changes;
// a failed swap leaves the previous version running.
func (h *WorkloadHost) apply(ctx context.Context, dw *modelfleet.DesiredWorkload) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	err := h.applyLocked(ctx, dw)
	h.lastErr = ""
	if err != nil {
		h.lastErr = err.Error()
	}
	return err
}

func (h *WorkloadHost) applyLocked(ctx context.Context, dw *modelfleet.DesiredWorkload) error {
	next, digest := h.def, ""
	if dw != nil {
		if sum := sha256.Sum256([]byte(dw.Manifest)); dw.Digest != "sha256:"+hex.EncodeToString(sum[:]) {
			return fmt.Errorf("workload %s:%s: manifest does not match digest %q", h.code.Name, dw.Version, dw.Digest)
		}
		m, err := spec.ParseManifest([]byte(dw.Manifest))
		if err != nil {
			return err
		}
		if next, err = h.code.Program(m); err != nil {
			return err
		}
		digest = dw.Digest
	}
	if digest == h.digest {
		return nil
	}
	if h.started {
		sctx, cancel := context.WithTimeout(ctx, swapTimeout)
		defer cancel()
		if err := h.sup.Swap(sctx, next); err != nil {
			return err
		}
	}
	h.current, h.digest = next, digest
	return nil
}

// actual is the workload as the site reports it.
func (h *WorkloadHost) actual() modelfleet.ActualWorkload {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.current.Manifest
	state := workload.StateStarting
	if h.started {
		state = h.sup.Status().State
	}
	return modelfleet.ActualWorkload{Version: m.Version, Model: m.Model, Features: m.FeatureNames(), State: state, Error: h.lastErr}
}

// convergeWorkloads applies the desired workloads after the models they
// call (changed: a new revision) and adds what runs to the site's report.
// A workload the agent has no code for is reported failed, not ignored,
// unless the site's workloads run outside the agent (ExternalWorkloads).
func (e *Edge) convergeWorkloads(ctx context.Context, ds modelfleet.Desired, changed bool, actual *modelfleet.Actual) {
	v, _ := workloadHosts.Load(e)
	h, _ := v.(*WorkloadHost)
	if h == nil && (len(ds.Workloads) == 0 || e.cfg.ExternalWorkloads) {
		return
	}
	actual.Workloads = map[string]modelfleet.ActualWorkload{}
	for name, dw := range ds.Workloads {
		if h == nil || name != h.code.Name {
			actual.Workloads[name] = modelfleet.ActualWorkload{Model: dw.Model,
				Error: fmt.Sprintf("this site's agent has no code for workload %q", name)}
		}
	}
	if h == nil {
		return
	}
	if changed {
		var dw *modelfleet.DesiredWorkload
		if d, ok := ds.Workloads[h.code.Name]; ok {
			dw = &d
		}
		if err := h.apply(ctx, dw); err != nil {
			e.log.Warn("apply desired workload failed", "workload", h.code.Name, "revision", ds.Revision, "error", err)
		}
	}
	actual.Workloads[h.code.Name] = h.actual()
}

func waitServes(ctx context.Context, e *Edge, model string) bool {
	for {
		if slices.ContainsFunc(e.Agent.Served(), func(m modelfleet.ServedModel) bool { return m.Name == model }) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
	}
}
