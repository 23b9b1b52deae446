package edge

import (
	"log/slog"
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
	Features []string // declared feature names, in the order Scorer expects them
	Scorer   Scorer
	LoadedAt time.Time
}

// route is everything served under one model name. Versions and Weights are
// parallel: a request goes to Versions[i] with probability Weights[i]/sum.
// Today Swap installs one version with all the weight; A/B between two
// versions of a model is a later change that fills in a second entry and
// makes pick draw by weight. Metrics are labelled by version already, so the
// two arms can be compared without changing them.
type route struct {
	Versions []*LoadedModel
	Weights  []float64
}

// pick chooses the version that answers a request.
func (rt *route) pick() *LoadedModel { return rt.Versions[0] }

// Router is the inference router of a site. Reads are lock-free: the routes
// live in an immutable map behind an atomic pointer, and a swap publishes a
// new map. A request that picked a version before a swap finishes on that
// version's Scorer, so a swap never drops or fails an in-flight request.
type Router struct {
	// Site is reported in every score response.
	Site string
	// Keys, when non-empty, are the API keys score requests must present as
	// "Authorization: Bearer <key>". Read once by Handler.
	Keys []string

	log       *slog.Logger
	vectorize Vectorizer
	metrics   *metrics

	mu     sync.Mutex // serialises writers of routes
	routes atomic.Pointer[map[string]*route]
}

// NewRouter returns a router that serves nothing yet.
func NewRouter(site string, vectorize Vectorizer, logger *slog.Logger) *Router {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Router{Site: site, log: logger, vectorize: vectorize, metrics: newMetrics(site)}
	r.routes.Store(&map[string]*route{})
	return r
}

// Registry is the router's Prometheus registry, served on /metrics; the
// binary may register its own collectors in it.
func (r *Router) Registry() *prometheus.Registry { return r.metrics.reg }

// Swap makes m the version served under its model name, replacing whatever
// was served there.
func (r *Router) Swap(m LoadedModel) {
	m.Features = slices.Clone(m.Features)
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.routes.Load()
	next := make(map[string]*route, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[m.Model.Name] = &route{Versions: []*LoadedModel{&m}, Weights: []float64{1}}
	r.routes.Store(&next)
	r.metrics.loaded.Set(float64(countVersions(next)))
}

func countVersions(routes map[string]*route) int {
	n := 0
	for _, rt := range routes {
		n += len(rt.Versions)
	}
	return n
}

// lookup returns the route of a model name, or nil.
func (r *Router) lookup(name string) *route { return (*r.routes.Load())[name] }

// current returns the version served under name with all the weight, or nil.
func (r *Router) current(name string) *LoadedModel {
	if rt := r.lookup(name); rt != nil {
		return rt.pick()
	}
	return nil
}

// Served lists the loaded model versions, sorted by name and version.
func (r *Router) Served() []modelfleet.ServedModel {
	out := []modelfleet.ServedModel{}
	for _, rt := range *r.routes.Load() {
		for _, m := range rt.Versions {
			out = append(out, modelfleet.ServedModel{
				ModelRef: m.Model,
				Digest:   m.Digest,
				LoadedAt: m.LoadedAt.UTC().Format(time.RFC3339),
			})
		}
	}
	slices.SortFunc(out, func(a, b modelfleet.ServedModel) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	return out
}

// names lists the served model names, sorted.
func (r *Router) names() []string {
	routes := *r.routes.Load()
	out := make([]string, 0, len(routes))
	for name := range routes {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
