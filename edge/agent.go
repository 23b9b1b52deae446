package edge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
)

// Config configures an Agent.
type Config struct {
	SiteID     string
	Loader     Loader     // inference.Load in production
	Vectorizer Vectorizer // inference.Vector in production
	Logger     *slog.Logger
	// Keys are the API keys score requests must present; none means no auth.
	Keys []string
	// KeepVersions is how many versions per model stay on disk for rollback;
	// 0 means DefaultKeepVersions.
	KeepVersions int
}

// Agent is a site's edge agent: the store on disk and the router serving
// what the store says is last good.
type Agent struct {
	site    string
	load    Loader
	log     *slog.Logger
	store   *Store
	router  *Router
	handler http.Handler
	deploys sync.Map // model name -> *sync.Mutex: one deploy per model at a time
}

// Open opens the site directory dir and loads every model state.json lists,
// before anything connects anywhere: a restarted or offline site serves its
// last good models at once. A model that does not load (file missing or
// corrupt) is logged and skipped so that the others still serve; it stays in
// state.json and is loaded again on the next start or replaced by a deploy.
func Open(dir string, cfg Config) (*Agent, error) {
	if err := modelfleet.ValidateName("site id", cfg.SiteID); err != nil {
		return nil, fmt.Errorf("edge: open: %w", err)
	}
	if cfg.Loader == nil || cfg.Vectorizer == nil {
		return nil, fmt.Errorf("edge: open site %q: loader and vectorizer are required", cfg.SiteID)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("site", cfg.SiteID)
	store, err := OpenStore(dir, cfg.KeepVersions, log)
	if err != nil {
		return nil, err
	}
	a := &Agent{site: cfg.SiteID, load: cfg.Loader, log: log, store: store, router: NewRouter(cfg.SiteID, cfg.Vectorizer, log)}
	a.router.Keys = cfg.Keys
	for _, e := range store.State().Models {
		req := e.request()
		m, err := a.loadModel(&req, store.Path(e.ModelRef, e.Digest), e.LoadedAt)
		if err != nil {
			log.Error("edge: last good model not loaded; serving the others", "model", e.ModelRef.String(), "digest", e.Digest, "err", err)
			continue
		}
		a.router.Swap(m)
		log.Info("edge: serving last good model", "model", e.ModelRef.String(), "digest", e.Digest)
	}
	a.handler = a.router.Handler()
	return a, nil
}

// Deploy makes the site serve req: install the artifact (downloading through
// fetch unless it is on disk already), load it, record it in state.json and
// swap it into the router. State is written only after the model loaded, so a
// model that fails to load never becomes last good and the previous version
// keeps serving. Deploying what is already served is a no-op with Changed
// false: deploy activities are retried.
func (a *Agent) Deploy(ctx context.Context, req DeployRequest, fetch FetchFunc) (DeployResult, error) {
	if err := req.Validate(); err != nil {
		return DeployResult{}, fmt.Errorf("edge: deploy: %w", err)
	}
	mu, _ := a.deploys.LoadOrStore(req.Model.Name, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()

	res := DeployResult{Site: a.site, Model: req.Model, Digest: req.Digest}
	if e, ok := a.store.served(req.Model.Name); ok && e.matches(&req) {
		if cur := a.router.current(req.Model.Name); cur != nil && cur.Model == req.Model && cur.Digest == req.Digest {
			res.LoadedAt = e.LoadedAt
			return res, nil
		}
	}
	path, err := a.store.Install(ctx, req, fetch)
	if err != nil {
		return DeployResult{}, err
	}
	loadedAt := time.Now().UTC()
	m, err := a.loadModel(&req, path, loadedAt)
	if err != nil {
		return DeployResult{}, fmt.Errorf("edge: deploy %s: %w", req.Model, err)
	}
	entry := StateEntry{ModelRef: req.Model, Digest: req.Digest, Format: req.Format, Features: req.Features, LoadedAt: loadedAt}
	if err := a.store.Put(entry); err != nil {
		return DeployResult{}, fmt.Errorf("edge: deploy %s: %w", req.Model, err)
	}
	prev := a.router.current(req.Model.Name)
	a.router.Swap(m)
	args := []any{"model", req.Model.String(), "digest", req.Digest}
	if prev != nil {
		args = append(args, "previous", prev.Model.String())
	}
	a.log.Info("edge: deployed", args...)
	res.Changed, res.LoadedAt = true, loadedAt
	return res, nil
}

// loadModel reads the artifact of req at path, checks it against the
// digest (a bit flip on disk must not become a wrong prediction) and loads
// it. Errors about the artifact itself carry modelfleet.EINVALID: retrying
// will not make the same bytes load.
func (a *Agent) loadModel(req *DeployRequest, path string, loadedAt time.Time) (m LoadedModel, err error) {
	if err := req.Validate(); err != nil {
		return m, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	sum := sha256.Sum256(data)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != req.Digest {
		return m, fmt.Errorf("%w: file on disk is %q, want %q", ErrDigestMismatch, got, req.Digest)
	}
	scorer, err := safeLoad(a.load, req.Format, data)
	if err != nil {
		return m, modelfleet.Errorf(modelfleet.EINVALID, "model %s does not load as %q: %v", req.Model, req.Format, err)
	}
	if n := scorer.NumFeatures(); n != len(req.Features) {
		return m, modelfleet.Errorf(modelfleet.EINVALID, "model %s expects %d features but %d are declared", req.Model, n, len(req.Features))
	}
	return LoadedModel{Model: req.Model, Digest: req.Digest, Format: req.Format, Features: req.Features, Scorer: scorer, LoadedAt: loadedAt}, nil
}

// safeLoad turns a panic in the loader into an error: a parser tripping over
// one bad artifact must not take down the router serving the others, nor put
// the agent in a crash loop while the deploy is retried.
func safeLoad(load Loader, format string, data []byte) (s Scorer, err error) {
	defer func() {
		if p := recover(); p != nil {
			s, err = nil, fmt.Errorf("loader panicked: %v", p)
		}
	}()
	s, err = load(format, data)
	if err == nil && s == nil {
		err = fmt.Errorf("loader returned no model")
	}
	return s, err
}

// Served lists the model versions the router serves.
func (a *Agent) Served() []modelfleet.ServedModel { return a.router.Served() }

// Handler is the router's HTTP API (see Router.Handler).
func (a *Agent) Handler() http.Handler { return a.handler }

// Router is the agent's inference router, for its metrics registry.
func (a *Agent) Router() *Router { return a.router }

// Site is the site ID.
func (a *Agent) Site() string { return a.site }
