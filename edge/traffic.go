package edge

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelfleet/modelfleet"
)

// SetTraffic splits the traffic of model across its versions: weights maps
// version to percentage and must add up to 100. It lists every version to
// keep loaded; a version at 0 stays loaded (pinned requests, rollback) and a
// shadow stays a shadow while it is at 0. A listed version that is not
// loaded is loaded from disk, without a download, so it must have been
// deployed to this site before and still be kept (see Config.KeepVersions).
// Versions left out are unloaded and stay on disk. The split is recorded in
// state.json and survives a restart. See route for what a change does to
// sticky keys.
func (a *Agent) SetTraffic(ctx context.Context, model string, weights map[string]int) error {
	return a.setTraffic(ctx, model, weights, nil)
}

// setTraffic is SetTraffic. known holds, by version, the artifacts the
// caller has just installed (Apply), as installed would find them on disk:
// those are not looked for there again.
func (a *Agent) setTraffic(ctx context.Context, model string, weights map[string]int, known map[string]DeployRequest) error {
	if err := modelfleet.ValidateName("model name", model); err != nil {
		return fmt.Errorf("edge: set traffic: %w", err)
	}
	if len(weights) == 0 {
		return fmt.Errorf("edge: set traffic %s: %w", model, modelfleet.Errorf(modelfleet.EINVALID, "no versions given: to stop serving a model, deploy another"))
	}
	ws := make([]weighted, 0, len(weights))
	for v, w := range weights {
		ref := modelfleet.ModelRef{Name: model, Version: v}
		if err := ref.Validate(); err != nil {
			return fmt.Errorf("edge: set traffic %s: %w", model, err)
		}
		ws = append(ws, weighted{ref: ref, weight: w})
	}
	if err := checkWeights(model, ws); err != nil {
		return fmt.Errorf("edge: set traffic %s: %w", model, err)
	}
	defer a.lockModel(model)()
	// A server started for a change that then failed stops again.
	defer a.settleServers(model)

	cur := make(map[string]WeightedModel)
	for _, v := range a.router.Versions(model) {
		cur[v.Model.Version] = v
	}
	next := make([]WeightedModel, 0, len(weights))
	for _, v := range slices.Sorted(maps.Keys(weights)) {
		w := weights[v]
		if c, ok := cur[v]; ok {
			next = append(next, WeightedModel{LoadedModel: c.LoadedModel, Weight: w, Shadow: c.Shadow && w == 0})
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		req, ok := known[v]
		if !ok {
			if req, err = a.store.installed(modelfleet.ModelRef{Name: model, Version: v}); err != nil {
				return fmt.Errorf("edge: set traffic %s: %w", model, err)
			}
		}
		m, ok := a.recall(req.Model, req.Digest)
		if !ok {
			if m, err = a.loadModel(&req, a.store.Path(req.Model, req.Digest), time.Now().UTC()); err != nil {
				return fmt.Errorf("edge: set traffic %s: %w", model, err)
			}
		}
		next = append(next, WeightedModel{LoadedModel: m, Weight: w})
	}
	if err := a.commit(model, next); err != nil {
		return fmt.Errorf("edge: set traffic %s: %w", model, err)
	}
	a.log.Info("edge: traffic set", "model", model, "traffic", trafficString(next))
	return nil
}

// Traffic returns the weight of every loaded version of model (shadows at
// 0), or nil when it is not served.
func (a *Agent) Traffic(model string) map[string]int {
	vs := a.router.Versions(model)
	if vs == nil {
		return nil
	}
	out := make(map[string]int, len(vs))
	for _, v := range vs {
		out[v.Model.Version] = v.Weight
	}
	return out
}

// commit records the versions of a model in state.json, then routes them:
// state first, so that what serves is always what the next start restores.
// Both check the weights the same way (checkWeights), so once the state is
// written the router does not refuse it.
func (a *Agent) commit(name string, ws []WeightedModel) error {
	entries := make([]StateEntry, len(ws))
	for i, w := range ws {
		weight := w.Weight
		entries[i] = StateEntry{ModelRef: w.Model, Digest: w.Digest, Format: w.Format, Features: w.Features,
			LoadedAt: w.LoadedAt, Weight: &weight, Shadow: w.Shadow, Server: w.Server}
	}
	if err := a.store.PutModel(name, entries); err != nil {
		return err
	}
	prev := a.router.Versions(name)
	if err := a.router.Set(name, ws); err != nil {
		return err
	}
	var dropped []LoadedModel
	for _, p := range prev {
		if !slices.ContainsFunc(ws, func(w WeightedModel) bool { return w.Model == p.Model && w.Digest == p.Digest }) {
			dropped = append(dropped, p.LoadedModel)
		}
	}
	a.replaced.Store(name, dropped)
	a.retainServers(name, ws)
	return nil
}

// recall returns the version ref with digest if the model's last change
// unloaded it (see Agent.replaced). Callers hold the model's lock.
func (a *Agent) recall(ref modelfleet.ModelRef, digest string) (LoadedModel, bool) {
	v, ok := a.replaced.Load(ref.Name)
	if !ok {
		return LoadedModel{}, false
	}
	for _, m := range v.([]LoadedModel) {
		// An external server stopped with its version: it starts again.
		if m.Model == ref && m.Digest == digest && m.Server == nil {
			return m, true
		}
	}
	return LoadedModel{}, false
}

// recorded reports whether state.json lists exactly the versions served.
// It may not after a start where a version failed to load: then a deploy
// that changes nothing in the router still rewrites the state.
func (a *Agent) recorded(name string, cur []WeightedModel) bool {
	entries := a.store.entries(name)
	if len(entries) != len(cur) {
		return false
	}
	for i, e := range entries { // both sorted by version
		c := cur[i]
		if e.ModelRef != c.Model || e.Digest != c.Digest || e.weight() != c.Weight || e.Shadow != c.Shadow {
			return false
		}
	}
	return true
}

// unchanged returns the loaded version when deploying req would change
// nothing: a retried deploy activity.
func unchanged(cur []WeightedModel, req *DeployRequest) (LoadedModel, bool) {
	m, ok := loaded(cur, req)
	if !ok {
		return m, false
	}
	if req.replaces() {
		return m, len(cur) == 1 && cur[0].Weight == 100
	}
	for _, c := range cur {
		if c.Model == req.Model {
			return m, c.Weight == weightOf(req) && c.Shadow == req.Shadow
		}
	}
	return m, false
}

// loaded returns the loaded version req names, if it is the same artifact.
func loaded(cur []WeightedModel, req *DeployRequest) (LoadedModel, bool) {
	for _, c := range cur {
		if c.Model == req.Model {
			r := DeployRequest{Model: c.Model, Digest: c.Digest, Format: c.Format, Features: c.Features}
			return c.LoadedModel, r.same(req)
		}
	}
	return LoadedModel{}, false
}

func weightOf(req *DeployRequest) int {
	if req.Weight == nil {
		return 0 // a shadow
	}
	return *req.Weight
}

// split returns the other versions of the model as they are to stay beside
// req, and req's weight. Replacing unloads them; otherwise they share what
// req leaves in proportion to their weights, and must have some to share.
func split(cur []WeightedModel, req *DeployRequest) ([]WeightedModel, int, error) {
	if req.replaces() {
		return nil, 100, nil
	}
	w := weightOf(req)
	var others []WeightedModel
	var weights []int
	for _, c := range cur {
		if c.Model.Version != req.Model.Version {
			others = append(others, c)
			weights = append(weights, c.Weight)
		}
	}
	rest := 100 - w
	shares := scale(weights, rest)
	sum := 0
	for i, s := range shares {
		others[i].Weight = s
		sum += s
	}
	if sum != rest {
		return nil, 0, modelfleet.Errorf(modelfleet.EINVALID,
			"%d%% of the traffic would go to no version: no other version of %q takes traffic; deploy without a weight to give this one all of it", rest, req.Model.Name)
	}
	return others, w, nil
}

// trafficString is a split for logs: "1=90 2=10 3=shadow".
func trafficString(ws []WeightedModel) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		v := strconv.Itoa(w.Weight)
		if w.Shadow {
			v = "shadow"
		}
		parts[i] = w.Model.Version + "=" + v
	}
	return strings.Join(parts, " ")
}
