package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/registry"
	"github.com/modelfleet/modelfleet/workload"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// swapTimeout bounds one workload version swap at a site: the new version
// must become ready (its router serves its model) and the old one drain.
const swapTimeout = 2 * time.Minute

// workloadHost runs one workload at a site: the code the agent is built
// with, the version that code runs when no release has set one (def), and
// the supervisor that swaps versions without losing a message.
type workloadHost struct {
	code    workload.Code
	def     workload.Program
	sup     *workload.Supervisor
	modules *workload.Modules // the WebAssembly modules manifests name

	mu       sync.Mutex
	started  bool             // the supervisor runs (swaps go through it)
	current  workload.Program // running, or to start with
	digest   string           // desired manifest digest applied; "" is def
	revision int64            // the desired revision applied; -1: none yet
	lastErr  string
}

// RunWorkload runs a workload beside the agent until ctx is done: code is
// the feature code the agent is built with, def the version it runs until a
// release sets one, and sup the supervisor that starts it and swaps
// versions without losing a message. The workload starts once the site
// serves the model it calls, so a fresh site does not dead-letter every
// reading before its first release; the pull loop applies the workload
// versions releases set (and reports them) from when RunWorkload is called.
// A site hosts one workload; without one it runs none.
//
// A version whose manifest names a WebAssembly module (module.digest) runs
// that module instead of the agent's code: it is read from the site's disk
// (<DataDir>/workloads/modules, re-hashed on every read) or downloaded from
// the gateway's artifact store by its digest, and compiled once. The
// manifest's digest is what the release's signed statement vouches for, so
// the module is vouched for too.
func (s *Site) RunWorkload(ctx context.Context, code workload.Code, def workload.Program, sup *workload.Supervisor) error {
	modules, err := workload.OpenModules(filepath.Join(s.cfg.DataDir, "workloads", "modules"), s.fetchModule)
	if err != nil {
		return fmt.Errorf("site %s: %w", s.cfg.SiteID, err)
	}
	defer modules.Close()
	h := &workloadHost{code: code, def: def, sup: sup, modules: modules, current: def, revision: -1}
	if !s.workload.CompareAndSwap(nil, h) {
		return fmt.Errorf("site %s already hosts a workload", s.cfg.SiteID)
	}
	defer s.workload.CompareAndSwap(h, nil)
	if !s.waitServes(ctx, h.model()) {
		return nil
	}
	h.mu.Lock()
	h.started = true
	p := h.current
	h.mu.Unlock()
	return h.sup.Run(ctx, p)
}

// waitServes waits until the site serves model; false if ctx ended first.
func (s *Site) waitServes(ctx context.Context, model string) bool {
	for {
		if slices.ContainsFunc(s.Edge.Served(), func(m modelfleet.ServedModel) bool { return m.Name == model }) {
			return true
		}
		if modelfleet.Sleep(ctx, time.Second) != nil {
			return false
		}
	}
}

func (h *workloadHost) model() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.current.Manifest.Model
}

// apply makes the host run dw (nil: the built-in version) as of desired
// revision rev; a revision it applied already changes nothing. The
// manifest is checked against its digest and the agent's code before
// anything changes; a failed swap leaves the previous version running.
func (h *workloadHost) apply(ctx context.Context, rev int64, dw *modelfleet.DesiredWorkload) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if rev <= h.revision {
		return nil
	}
	h.revision = rev
	err := h.applyLocked(ctx, dw)
	h.lastErr = ""
	if err != nil {
		h.lastErr = err.Error()
	}
	return err
}

// refuse records that desired revision rev was refused, changing nothing
// that runs.
func (h *workloadHost) refuse(rev int64, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if rev <= h.revision {
		return
	}
	h.revision, h.lastErr = rev, err.Error()
}

func (h *workloadHost) applyLocked(ctx context.Context, dw *modelfleet.DesiredWorkload) error {
	next, digest := h.def, ""
	if dw != nil {
		if sum := sha256.Sum256([]byte(dw.Manifest)); dw.Digest != "sha256:"+hex.EncodeToString(sum[:]) {
			return fmt.Errorf("workload %s:%s: manifest does not match digest %q", h.code.Name, dw.Version, dw.Digest)
		}
		if dw.Digest == h.digest {
			return nil // runs already
		}
		m, err := spec.ParseManifest([]byte(dw.Manifest))
		if err != nil {
			return err
		}
		switch {
		case m.Image != "":
			return fmt.Errorf("workload %s is a container image (%s): this site's agent hosts its workloads itself and runs WebAssembly modules or built-in code, not images; release it to Kubernetes sites (gitops driver) or give it a module", m.Ref(), m.Image)
		case m.Module != nil && m.Name != h.code.Name:
			return fmt.Errorf("workload %s: this site hosts workload %q", m.Ref(), h.code.Name)
		case m.Module != nil:
			if next, err = h.modules.Program(ctx, m); err != nil {
				return err
			}
		default:
			if next, err = h.code.Program(m); err != nil {
				return err
			}
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

// fetchModule downloads a workload module from the gateway's artifact
// store, checking its digest, over the connection the site pulls through.
func (s *Site) fetchModule(ctx context.Context, digest string, w io.Writer) error {
	if s.cfg.GatewayURL == "" {
		return fmt.Errorf("the site has no gateway to download module %s from", digest)
	}
	ctx, cancel := context.WithTimeout(ctx, s.downloadTimeout())
	defer cancel()
	dl := &registry.Client{HTTPClient: s.downloadClient(), AllowedHosts: s.cfg.ArtifactHosts}
	_, err := dl.Download(ctx, strings.TrimRight(s.cfg.GatewayURL, "/")+"/api/artifacts/"+digest, digest, w)
	return err
}

// actual is the workload as the site reports it.
func (h *workloadHost) actual() modelfleet.ActualWorkload {
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
// call (once per revision: a failed one is not retried until the next) and
// adds what runs to the site's report. A workload the agent has no code
// for is reported failed, not ignored, unless the site's workloads run
// outside the agent (ExternalWorkloads).
func (s *Site) convergeWorkloads(ctx context.Context, ds modelfleet.Desired, actual *modelfleet.Actual) {
	h := s.workload.Load()
	if h == nil && s.cfg.ExternalWorkloads {
		s.probeExternal(ctx, ds, actual)
		return
	}
	if h == nil && len(ds.Workloads) == 0 {
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
	var dw *modelfleet.DesiredWorkload
	if d, ok := ds.Workloads[h.code.Name]; ok {
		dw = &d
	}
	// A site with release keys runs a manifest only if a signed statement
	// vouches for it; a refused one leaves what runs running.
	if t := s.Edge.Trust(); dw != nil && t != nil {
		if err := t.VouchWorkload(ds, h.code.Name, *dw); err != nil {
			h.refuse(ds.Revision, err)
			s.log.Warn("desired workload refused", "workload", h.code.Name, "revision", ds.Revision, "error", err)
			actual.Workloads[h.code.Name] = h.actual()
			return
		}
	}
	if err := h.apply(ctx, ds.Revision, dw); err != nil {
		s.log.Warn("apply desired workload failed", "workload", h.code.Name, "revision", ds.Revision, "error", err)
	}
	actual.Workloads[h.code.Name] = h.actual()
}
