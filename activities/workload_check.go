package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/activity"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// pairingBatch bounds the sites of one pairings request.
const pairingBatch = 1000

// maxReported bounds the distinct incompatible pairs one error lists.
const maxReported = 5

// releaseRef is the model version of the release this activity runs for:
// nv's when the workflow passes it; from release workflows older than that,
// the workflow ID, which is modelfleet.ReleaseWorkflowID(version) for every
// release (names cannot contain '/', so it names the version exactly).
func releaseRef(ctx context.Context, model string, nv *modelfleet.DesiredVersion) (modelfleet.ModelRef, bool) {
	if nv != nil {
		ref := modelfleet.ModelRef{Name: model, Version: nv.Version}
		return ref, ref.Validate() == nil
	}
	if !activity.IsActivity(ctx) {
		return modelfleet.ModelRef{}, false
	}
	rest, ok := strings.CutPrefix(activity.GetInfo(ctx).WorkflowExecution.ID, modelfleet.ReleaseWorkflowID(modelfleet.ModelRef{Name: model}))
	ref := modelfleet.ModelRef{Name: model, Version: rest}
	return ref, ok && ref.Validate() == nil
}

// checkWorkloads refuses a release that would pair a workload and a model
// version with different feature schemas at any planned site: the release's
// own workload (the model card's workload key) with the new version, and,
// while a wave splits traffic, with the version the site served before; or,
// when the release carries no workload, the workloads each site already runs
// with the new version. It runs in PlanRollout, before any site changes.
func (a *Cloud) checkWorkloads(ctx context.Context, model string, nv *modelfleet.DesiredVersion, plan RolloutPlan) error {
	ref, ok := releaseRef(ctx, model, nv)
	if !ok || a.Registry == nil {
		return nil // not planning a release: there is no version to pair
	}
	m, err := a.Registry.Get(ctx, ref.Name, ref.Version)
	if err != nil {
		return fmt.Errorf("plan %s: %w", ref, err)
	}
	if len(m.Features) == 0 && nv != nil {
		m.Features = nv.Features // what validation read from the artifact itself
	}
	carried, err := a.releaseWorkload(ctx, m)
	if err != nil {
		return nonRetryableIfInvalid(err)
	}
	if carried != nil {
		if err := a.validateModule(ctx, *carried, &m); err != nil {
			return nonRetryableIfInvalid(err)
		}
	}
	wf := a.Fleet
	var sites []string
	for _, w := range plan.Waves {
		for _, s := range w {
			sites = append(sites, s.ID)
		}
	}
	var pairings []modelfleet.SitePairing
	for len(sites) > 0 {
		n := min(len(sites), pairingBatch)
		p, err := wf.Pairings(ctx, modelfleet.PairingRequest{Model: model, Sites: sites[:n]})
		if err != nil {
			return fmt.Errorf("plan %s: pairings: %w", ref, err)
		}
		pairings, sites = append(pairings, p...), sites[n:]
	}
	return nonRetryableIfInvalid(CheckPairings(m, carried, splits(plan), pairings))
}

// splits reports whether any wave holds a step below 100%, so that sites
// serve the version they had beside the new one for a while.
func splits(plan RolloutPlan) bool {
	for _, w := range plan.Policy.Waves {
		if slices.ContainsFunc(w.Steps, func(s int) bool { return s < 100 }) {
			return true
		}
	}
	return false
}

// CheckPairings checks every (workload, model version) pair a release of m
// would leave at the sites: carried (nil if the release brings no workload)
// or each site's own workloads with m, and with the site's previous versions
// when split. The error lists each distinct incompatible pair, naming both,
// with how many sites it affects.
func CheckPairings(m modelfleet.Model, carried *modelfleet.WorkloadRecord, split bool, sites []modelfleet.SitePairing) error {
	c := newPairChecks()
	if carried != nil {
		c.check("", manifestOf(carried.Name, carried.Version, carried.Model, carried.Features), m.ModelRef, m.Features, "")
	}
	for _, s := range sites {
		var ws []spec.Manifest
		if carried != nil {
			ws = append(ws, manifestOf(carried.Name, carried.Version, carried.Model, carried.Features))
		}
		for _, pw := range s.Workloads {
			if carried == nil || pw.Name != carried.Name {
				ws = append(ws, manifestOf(pw.Name, pw.Version, m.Name, pw.Features))
			}
		}
		for _, w := range ws {
			c.check(s.Site, w, m.ModelRef, m.Features, "")
			if !split {
				continue
			}
			for _, v := range s.Versions {
				if v.Version != m.Version {
					c.check(s.Site, w, modelfleet.ModelRef{Name: m.Name, Version: v.Version}, v.Features,
						fmt.Sprintf("while waves split traffic, %s:%s keeps serving beside %s", m.Name, v.Version, m.Version))
				}
			}
		}
	}
	return c.err("release of " + m.ModelRef.String())
}

// pairChecks checks (workload, model version) pairs once each, and counts
// the sites of each incompatible one.
type pairChecks struct {
	bad     map[pairKey]error
	count   map[pairKey][]string
	checked map[pairKey]bool
	order   []pairKey
}

type pairKey struct{ workload, model string }

func newPairChecks() *pairChecks {
	return &pairChecks{bad: map[pairKey]error{}, count: map[pairKey][]string{}, checked: map[pairKey]bool{}}
}

// check checks w with model version mv (which takes features) at site ("":
// not a site's pair); during says when the pair meets, if not for good.
func (c *pairChecks) check(site string, w spec.Manifest, mv modelfleet.ModelRef, features []string, during string) {
	p := pairKey{w.Ref() + "@" + strings.Join(w.FeatureNames(), ","), mv.String() + "@" + strings.Join(features, ",")}
	if !c.checked[p] {
		c.checked[p] = true
		if err := spec.CheckRelease(w, mv, features); err != nil {
			if during != "" {
				err = fmt.Errorf("%s: %w", during, err)
			}
			c.bad[p] = err
			c.order = append(c.order, p)
		}
	}
	if c.bad[p] != nil {
		c.count[p] = append(c.count[p], site)
	}
}

// err is nil if every pair checked is compatible, else a *PairingError
// listing each distinct incompatible pair, naming both, with how many sites
// it affects; subject is what is refused ("release of m:3").
func (c *pairChecks) err(subject string) error {
	if len(c.order) == 0 {
		return nil
	}
	var msgs []string
	for i, p := range c.order {
		if i == maxReported {
			msgs = append(msgs, fmt.Sprintf("and %d more incompatible pairs", len(c.order)-i))
			break
		}
		msg := c.bad[p].Error()
		if sites := c.count[p]; len(sites) > 0 && sites[0] != "" {
			msg += fmt.Sprintf(" (at %d sites, e.g. %q)", len(sites), sites[0])
		}
		msgs = append(msgs, msg)
	}
	var first *spec.IncompatibleError
	errors.As(c.bad[c.order[0]], &first)
	return &PairingError{First: first, Message: subject + " refused before any site changed: " + strings.Join(msgs, "; ")}
}

// PairingError is a release refused for incompatible pairs. It unwraps to
// the first pair's *spec.IncompatibleError (and so to EINVALID).
type PairingError struct {
	First   *spec.IncompatibleError
	Message string
}

func (e *PairingError) Error() string { return e.Message }

// Unwrap gives the first incompatible pair.
func (e *PairingError) Unwrap() error { return e.First }

// manifestOf is as much of a manifest as the compatibility check reads.
func manifestOf(name, version, model string, features []string) spec.Manifest {
	m := spec.Manifest{Name: name, Version: version, Model: model}
	for _, f := range features {
		m.Features = append(m.Features, spec.Feature{Name: f})
	}
	return m
}

// releaseWorkload is the workload version model version m is released with
// (its PropWorkload property), or nil when it names none.
func (a *Cloud) releaseWorkload(ctx context.Context, m modelfleet.Model) (*modelfleet.WorkloadRecord, error) {
	s := m.Properties[modelfleet.PropWorkload]
	if s == "" {
		return nil, nil
	}
	ref, err := modelfleet.ParseWorkloadRef(s)
	if err != nil {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "model %s: property %s: %s", m.ModelRef, modelfleet.PropWorkload, modelfleet.ErrorMessage(err))
	}
	wf := a.Fleet
	rec, err := wf.Workload(ctx, ref.Name, ref.Version)
	if modelfleet.ErrorCode(err) == modelfleet.ENOTFOUND {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "model %s is released with workload %s, which is not registered (modelfleet workload register)", m.ModelRef, ref)
	}
	if err != nil {
		return nil, fmt.Errorf("model %s: workload %s: %w", m.ModelRef, ref, err)
	}
	if rec.Model != m.Name {
		return nil, &spec.IncompatibleError{Workload: ref.String(), Model: m.ModelRef.String(),
			Reasons: []string{fmt.Sprintf("the workload calls model %q", rec.Model)}}
	}
	return &rec, nil
}

// stepWorkload is the workload version a step of the release carries to
// its sites (nil when its model version names none).
func (a *Cloud) stepWorkload(ctx context.Context, req modelfleet.StepRequest) (*modelfleet.WorkloadRecord, error) {
	if a.Registry == nil {
		return nil, nil
	}
	// A registered version and the workload it names never change: look
	// them up once per version, not on every step of every batch.
	ref := modelfleet.ModelRef{Name: req.Model, Version: req.New.Version}
	if w, ok := a.stepWorkloads.Load(ref); ok {
		return w.(*modelfleet.WorkloadRecord), nil
	}
	m, err := a.Registry.Get(ctx, req.Model, req.New.Version)
	if err != nil {
		return nil, fmt.Errorf("step %s:%s: %w", req.Model, req.New.Version, err)
	}
	w, err := a.releaseWorkload(ctx, m)
	if err != nil {
		return nil, nonRetryableIfInvalid(err)
	}
	a.stepWorkloads.Store(ref, w)
	return w, nil
}
