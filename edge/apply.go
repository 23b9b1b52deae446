package edge

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/modelfleet/modelfleet"
)

// Apply makes the site serve exactly the desired split of model: every
// listed version is installed (downloaded only if it is not on disk, digest
// verified) and loaded, weights are set, and versions left out are unloaded
// (they stay on disk for a rollback). An empty split stops serving the
// model. Idempotent: applying the same split again changes nothing, so the
// agent can re-apply after a restart or a lost acknowledgement; the split
// served already, as state.json records it, installs nothing (as Deploy of
// what is served), once its statements verify.
func (a *Agent) Apply(ctx context.Context, model string, versions []modelfleet.DesiredVersion, fetch func(modelfleet.DesiredVersion) FetchFunc) error {
	if err := modelfleet.ValidateName("model name", model); err != nil {
		return fmt.Errorf("edge: apply: %w", err)
	}
	if err := modelfleet.ValidateSplit(versions); err != nil {
		return fmt.Errorf("edge: apply %s: %w", model, err)
	}
	if len(versions) == 0 {
		defer a.lockModel(model)()
		if a.router.Versions(model) == nil {
			return nil
		}
		if err := a.commit(model, nil); err != nil {
			return fmt.Errorf("edge: apply %s: stop serving: %w", model, err)
		}
		a.log.Info("edge: model no longer served", "model", model)
		return nil
	}
	// Every version's statement is checked before anything is installed:
	// a refused split changes nothing at the site.
	sizes, err := a.verifyDesired(model, versions)
	if err != nil {
		return fmt.Errorf("edge: apply %s: %w", model, err)
	}
	if a.servesAlready(model, versions, sizes) {
		// Nothing to install, load or record: as Deploy of what is served
		// already. A rollback restores, at each site that never took the
		// release's version (its apply failed), exactly what it serves.
		return nil
	}
	weights := make(map[string]int, len(versions))
	known := make(map[string]DeployRequest, len(versions))
	for i, v := range versions {
		req := DeployRequest{Model: modelfleet.ModelRef{Name: model, Version: v.Version}, Digest: v.Digest, Format: v.Format, ArtifactURL: v.ArtifactURL, Features: v.Features, Size: sizes[i], Server: v.Server}
		if sizes[i] > 0 {
			req.Statement = v.Statement
		}
		if err := req.Validate(); err != nil {
			return fmt.Errorf("edge: apply %s: %w", req.Model, err)
		}
		if _, err := a.store.Install(ctx, req, a.capped(fetch(v))); err != nil {
			return fmt.Errorf("edge: apply %s: %w", req.Model, err)
		}
		weights[v.Version] = v.Weight
		// What installed would read back of the metadata Install wrote.
		known[v.Version] = DeployRequest{Model: req.Model, Digest: req.Digest, Format: req.Format, Features: req.Features, Server: req.Server}
	}
	// Comparing weights by version is enough: a registered version's bytes
	// never change (the registry refuses a second digest for a version, as
	// Azure ML does), so the same version is the same artifact.
	if same(a.Traffic(model), weights) {
		return nil
	}
	return a.setTraffic(ctx, model, weights, known)
}

// servesAlready reports whether the router serves exactly the split of
// model that versions lists — the same artifacts (version, digest, format,
// features) at the same weights, none a shadow, none in an external server
// — and state.json records it so; and, for each version whose statement
// was verified (a signed size), the same statement is kept beside its
// artifact, as Install would have left it.
func (a *Agent) servesAlready(model string, versions []modelfleet.DesiredVersion, sizes []int64) bool {
	cur := a.router.Versions(model)
	if len(cur) != len(versions) {
		return false
	}
	for i, v := range versions {
		want := DeployRequest{Model: modelfleet.ModelRef{Name: model, Version: v.Version}, Digest: v.Digest, Format: v.Format, Features: v.Features, Server: v.Server}
		j := slices.IndexFunc(cur, func(c WeightedModel) bool { return c.Model == want.Model })
		if j < 0 || v.Server != nil || cur[j].Server != nil || cur[j].Shadow || cur[j].Weight != v.Weight {
			return false
		}
		c := cur[j]
		if got := (DeployRequest{Model: c.Model, Digest: c.Digest, Format: c.Format, Features: c.Features}); !got.same(&want) {
			return false
		}
		if sizes[i] > 0 && !a.store.keepsStatement(a.store.Path(want.Model, want.Digest), v.Statement) {
			return false
		}
	}
	return a.recorded(model, cur)
}

func same(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Stats returns each loaded version of model with its weight and the
// router's figures since the process started (its counters' epoch):
// requests, errors, the latency histogram and the p99 latency estimated
// from it, predictions, feedback. They are cumulative: the control plane
// measures a window as the difference of two reports.
//
// It reads the router's score and feedback figures straight from their
// collectors, not by gathering the router's registry, which /metrics
// serves: that also holds the Go and process collectors — a gather reads
// /proc/self (stat, limits, netstat, the open descriptors) and the
// runtime's metrics — and whatever the binary registered there (the signal
// buffer's figures, the model servers'), none of which a report carries;
// and a site reports after every apply and every heartbeat.
func (a *Agent) Stats(model string) []modelfleet.ServedVersion {
	var out []modelfleet.ServedVersion
	idx := map[string]int{}
	epoch := a.router.metrics.epoch
	for _, v := range a.router.Versions(model) {
		idx[v.Model.Version] = len(out)
		out = append(out, modelfleet.ServedVersion{Version: v.Model.Version, Digest: v.Digest, Weight: v.Weight, Epoch: epoch})
	}
	if len(out) == 0 {
		return out
	}
	const (
		requests = iota
		feedback
		residuals
		predictions
		latency
	)
	rm, fb := a.router.metrics, a.router.feedback
	collect([]prometheus.Collector{requests: rm.requests, feedback: fb.counts, residuals: fb.residuals, predictions: rm.predictions, latency: rm.latency}, func(kind int, m *dto.Metric) {
		i, ok := versionOf(m, model, idx)
		if !ok {
			return
		}
		switch kind {
		case requests:
			n := int64(m.GetCounter().GetValue())
			out[i].Requests += n
			if label(m, "outcome") != "ok" {
				out[i].Errors += n
			}
		case feedback:
			n := int64(m.GetCounter().GetValue())
			switch label(m, "outcome") {
			case "correct":
				out[i].Correct += n
				out[i].Labelled += n
			case "wrong":
				out[i].Labelled += n
			case "valued":
				res(&out[i]).N += n
			}
		case residuals:
			v := m.GetGauge().GetValue()
			switch label(m, "stat") {
			case statSquaredError:
				res(&out[i]).SquaredError += v
			case statTarget:
				res(&out[i]).TargetSum += v
			case statTargetSquares:
				res(&out[i]).TargetSquares += v
			}
		case predictions:
			out[i].Predictions = binCounts(m.GetHistogram())
		case latency:
			out[i].P99LatencyMs = quantile(m.GetHistogram(), 0.99) * 1000
			out[i].Latency = binCounts(m.GetHistogram())
		}
	})
	return out
}

// collect calls f with each metric of each collector in cs, in its
// protobuf form, and the collector's index in cs. A metric that cannot be
// written is skipped, as a gather would fail it.
func collect(cs []prometheus.Collector, f func(int, *dto.Metric)) {
	ch := make(chan prometheus.Metric, 16)
	go func() {
		for _, c := range cs {
			c.Collect(ch)
			ch <- nil // the next collector's metrics follow
		}
		close(ch)
	}()
	k := 0
	for m := range ch {
		if m == nil {
			k++
			continue
		}
		var pb dto.Metric
		if m.Write(&pb) == nil {
			f(k, &pb)
		}
	}
}

// binCounts turns a histogram's cumulative buckets into counts per bin
// (modelfleet.PredictionBins or LatencyBuckets; the last is everything
// above the last edge). Nil when nothing was observed yet.
func binCounts(h *dto.Histogram) []int64 {
	total := h.GetSampleCount()
	if total == 0 {
		return nil
	}
	bs := h.GetBucket()
	sort.Slice(bs, func(i, j int) bool { return bs[i].GetUpperBound() < bs[j].GetUpperBound() })
	out := make([]int64, 0, len(bs)+1)
	var prev uint64
	for _, b := range bs {
		if math.IsInf(b.GetUpperBound(), 1) {
			continue
		}
		out = append(out, int64(b.GetCumulativeCount()-prev))
		prev = b.GetCumulativeCount()
	}
	return append(out, int64(total-prev))
}

func versionOf(m *dto.Metric, model string, idx map[string]int) (int, bool) {
	if label(m, "model") != model {
		return 0, false
	}
	i, ok := idx[label(m, "version")]
	return i, ok
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// quantile is the upper bound of the first bucket holding the q-th
// observation: an overestimate by at most one bucket width, which is the
// safe side for a latency criterion.
func quantile(h *dto.Histogram, q float64) float64 {
	total := h.GetSampleCount()
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	bs := h.GetBucket()
	sort.Slice(bs, func(i, j int) bool { return bs[i].GetUpperBound() < bs[j].GetUpperBound() })
	for _, b := range bs {
		if b.GetCumulativeCount() >= rank {
			return b.GetUpperBound()
		}
	}
	if len(bs) > 0 {
		return bs[len(bs)-1].GetUpperBound()
	}
	return 0
}

// res is v's regression sums, made on first use.
func res(v *modelfleet.ServedVersion) *modelfleet.Residuals {
	if v.Residuals == nil {
		v.Residuals = &modelfleet.Residuals{}
	}
	return v.Residuals
}
