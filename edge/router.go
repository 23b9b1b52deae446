package edge

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/prometheus/client_golang/prometheus"
)

// LoadedModel is one model version ready to serve.
type LoadedModel struct {
	Model    modelfleet.ModelRef
	Digest   string
	Format   string
	Features []string                // declared feature names, in the order Scorer expects them
	Server   *modelfleet.ModelServer // the external server it runs in; nil: built in
	// Ready, when set, says whether the version can answer now (an
	// external server: its readiness); nil: always, once loaded.
	Ready func() error
	// PredictRows, when set, scores n rows (x, row-major) at once: an
	// external server answers a V2 request's rows in one request instead
	// of one each. It returns each row's prediction, as Scorer.Predict
	// does, and a multiclass model's probabilities, n × classes.
	PredictRows func(x []float64, n int) (p, probs []float64, err error)
	Scorer      Scorer
	LoadedAt    time.Time
}

// WeightedModel is one loaded version of a model and its share of the
// model's traffic.
type WeightedModel struct {
	LoadedModel
	// Weight is the percentage of the model's requests this version answers.
	// A version at 0 stays loaded: requests pinned to it, a shadow, a
	// rollback that needs no reload.
	Weight int
	// Shadow versions answer no request of their own (Weight is 0): they get
	// a copy of every request another version answered, and their answers
	// are measured and discarded.
	Shadow bool
}

// Router is the inference router of a site. Reads are lock-free: the routes
// and keys live in an immutable table behind an atomic pointer, and every
// change publishes a new table. A request that picked a version before a
// change finishes on that version's Scorer, so a change never drops or fails
// an in-flight request.
type Router struct {
	internalKey string // InternalKey; its hash is in every key table

	// Site is reported in every score response. It is read when a route is
	// set, so set it first.
	Site string
	// Keys, when non-nil, is installed as the site-wide API key set by
	// Handler. SetKeys replaces it without a restart.
	Keys []string

	log       *slog.Logger
	vectorize Vectorizer
	metrics   *metrics
	shadow    *shadowPool
	post      *backlog // scored requests' observer updates and shadow scores (post.go)

	mu    sync.Mutex // serialises writers of table
	table atomic.Pointer[table]

	observer atomic.Pointer[observerRef] // the monitoring loop's (observe.go); nil: none
	feedback *feedbackState              // identified predictions awaiting ground truth (feedback.go)
}

// NewRouter returns a router that serves nothing yet.
func NewRouter(site string, vectorize Vectorizer, logger *slog.Logger) *Router {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Router{Site: site, log: logger, vectorize: vectorize, metrics: newMetrics(site), shadow: newShadowPool(0, 0)}
	r.feedback = newFeedbackState(r.metrics.reg, site)
	r.post = newBacklog(r.runPost)
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand: never fails (Go 1.24+)
	r.internalKey = hex.EncodeToString(b[:])
	r.table.Store(&table{routes: map[string]*route{}, keys: &keyTable{internal: sha256.Sum256([]byte(r.internalKey))}})
	return r
}

// Registry is the router's Prometheus registry, served on /metrics; the
// binary may register its own collectors in it.
func (r *Router) Registry() *prometheus.Registry { return r.metrics.reg }

// Set makes versions the loaded versions of the model name, with their
// traffic split, replacing whatever was served under it; no versions stop
// serving it. The weights must add up to 100.
func (r *Router) Set(name string, versions []WeightedModel) error {
	ws := make([]weighted, len(versions))
	for i, v := range versions {
		if v.Scorer == nil {
			return fmt.Errorf("edge: route %q: model %s has no scorer", name, v.Model)
		}
		ws[i] = weighted{v.Model, v.Weight, v.Shadow}
	}
	if err := checkWeights(name, ws); err != nil {
		return fmt.Errorf("edge: route %q: %w", name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.table.Load()
	next := &table{routes: maps.Clone(old.routes), keys: old.keys}
	var rt *route
	if len(versions) == 0 {
		delete(next.routes, name)
	} else {
		rt = r.newRoute(name, versions)
		next.routes[name] = rt
	}
	if rt != nil && len(rt.shadows) > 0 {
		r.shadow.run(r.runShadow) // before the table that mirrors to it
	}
	r.table.Store(next)
	r.metrics.loaded.Set(float64(countVersions(next.routes)))
	r.retire(old.routes[name], rt)
	if rt != nil {
		r.metrics.setWeights(rt)
	}
	return nil
}

// retire forgets every series of each version of prev (the route a Set
// replaced; nil for none) that next (nil for none) no longer loads: its
// counters and histograms, its weight gauge, its feedback. Kept, they grew
// by a dozen series (a few KiB) with every release an agent ever served:
// in its memory, in every scrape of /metrics and in every report's walk of
// the counters (Stats), without bound. The control plane reads only loaded
// versions' counters, and a version loaded again (a rollback to it) starts
// from zero, which its window analysis takes as a counter going down: the
// window starts again.
func (r *Router) retire(prev, next *route) {
	if prev == nil {
		return
	}
	for _, a := range prev.arms {
		if next == nil || next.version(a.Model.Version) == nil {
			r.metrics.forget(prev.name, a.Model.Version)
			r.feedback.forget(prev.name, a.Model.Version)
		}
	}
}

// Swap makes m the only version served under its model name, with all the
// traffic.
func (r *Router) Swap(m LoadedModel) {
	if err := r.Set(m.Model.Name, []WeightedModel{{LoadedModel: m, Weight: 100}}); err != nil {
		r.log.Error("edge: swap", "model", m.Model.String(), "err", err)
	}
}

// Versions returns the loaded versions of the model name, sorted by version.
func (r *Router) Versions(name string) []WeightedModel {
	rt := r.lookup(name)
	if rt == nil {
		return nil
	}
	out := make([]WeightedModel, len(rt.arms))
	for i, a := range rt.arms {
		out[i] = WeightedModel{LoadedModel: *a.LoadedModel, Weight: a.weight, Shadow: a.shadow}
		out[i].Features = slices.Clone(a.Features)
	}
	return out
}

// Close does what scored requests left in the backlog (post.go), then
// stops the shadow workers, letting each finish the request it is scoring.
// Mirrored requests still queued for a worker are discarded.
func (r *Router) Close() {
	r.post.stop()
	r.shadow.close()
}

func countVersions(routes map[string]*route) int {
	n := 0
	for _, rt := range routes {
		n += len(rt.arms)
	}
	return n
}

// lookup returns the route of a model name, or nil.
func (r *Router) lookup(name string) *route { return r.table.Load().routes[name] }

// Served lists the loaded model versions, sorted by name and version.
func (r *Router) Served() []modelfleet.ServedModel {
	out := []modelfleet.ServedModel{}
	for _, v := range r.served() {
		out = append(out, v.ServedModel)
	}
	return out
}

// servedVersion is a loaded version as GET /api/models lists it.
type servedVersion struct {
	modelfleet.ServedModel
	Weight int  `json:"weight"`
	Shadow bool `json:"shadow"`
}

func (r *Router) served() []servedVersion {
	out := []servedVersion{}
	for _, rt := range r.table.Load().routes {
		for _, a := range rt.arms {
			out = append(out, servedVersion{
				ServedModel: modelfleet.ServedModel{
					ModelRef: a.Model,
					Digest:   a.Digest,
					LoadedAt: a.LoadedAt.UTC().Format(time.RFC3339),
				},
				Weight: a.weight,
				Shadow: a.shadow,
			})
		}
	}
	slices.SortFunc(out, func(a, b servedVersion) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	return out
}

// names lists the served model names, sorted.
func (r *Router) names() []string {
	return slices.Sorted(maps.Keys(r.table.Load().routes))
}
