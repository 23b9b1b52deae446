package edge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelfleet/modelfleet"
)

// Config configures an Agent.
type Config struct {
	SiteID     string
	Loader     Loader     // inference.Load in production
	Vectorizer Vectorizer // inference.Vector in production
	Logger     *slog.Logger
	// Keys are site-wide API keys score requests must present. When set they
	// replace, for this run, the site-wide keys persisted by SetKeys; with
	// neither (nor any model keys) there is no authentication.
	Keys []string
	// KeysFile, if set, is the router API keys file (keysfile.go; a
	// mounted Secret): read before any model is served — a file that does
	// not parse stops Open — and again by ReloadKeysFile and WatchKeysFile.
	// Its scopes win over the desired state's and the local ones (keyLayer).
	KeysFile string
	// KeepVersions is how many versions per model stay on disk for rollback;
	// 0 means DefaultKeepVersions. Loaded versions are always kept.
	KeepVersions int
	// ShadowWorkers and ShadowQueue size the pool scoring mirrored requests
	// for shadow versions; 0 means GOMAXPROCS and DefaultShadowQueue.
	ShadowWorkers int
	ShadowQueue   int
	// Trust, if set, is what release statements are verified with: a
	// version loads, at start and on every apply, only with a statement
	// a trusted key signed (verify.go). Nil: unsigned versions load.
	Trust *modelfleet.Trust
	// MaxModelBytes bounds a model file read to be parsed (default
	// DefaultMaxModelBytes).
	MaxModelBytes int64
	// Grandfathered are artifact digests that load without a statement
	// (SetGrandfathered).
	Grandfathered []string
	// Servers runs the external model servers of FormatOIP versions
	// (servers.go). Nil: such versions fail to load, saying the site runs
	// no model servers.
	Servers ServerHost
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
	deploys sync.Map // model name -> *sync.Mutex: one change of a model's versions at a time
	// replaced holds, per model name, the versions its last change
	// unloaded ([]LoadedModel): a rollback restores exactly those, and
	// with them in memory it needs no read, digest check and parse of the
	// files again — at a fleet's scale, the bulk of a rollback's work at
	// the sites. Only the last change's, so at most a model's previous
	// split stays in memory beside the current one.
	replaced sync.Map

	keysMu sync.Mutex // serialises writes of keys.json and changes of the layers below
	keys   keysFile   // keys.json as written
	// The layers of API keys (apikeys.go), first wins per scope.
	configured, fromDesired, local keyLayer
	cfgKeys                        []string // Config.Keys
	keysPath                       string   // Config.KeysFile
	keysSum                        [sha256.Size]byte
	keysSeen                       bool // keysSum is the last content read

	trust    atomic.Pointer[modelfleet.Trust]
	verified verifiedMemo // statements verified under trust (verify.go)
	// grandfathered: digests that load without a statement (SetGrandfathered)
	grandfathered atomic.Pointer[[]string]
	maxModel      int64
	servers       ServerHost
	refusedMu     sync.Mutex
	refused       map[string]string // model -> why its versions were not restored
}

// Open opens the site directory dir and loads every model version
// state.json lists, with its traffic weight, before anything connects
// anywhere: a restarted or offline site serves its last good models at once.
// A version that does not load (file missing or corrupt) is logged and
// skipped so that the others still serve, its traffic shared among the
// versions of its model that did load; it stays in state.json and is loaded
// again on the next start or replaced by a deploy.
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
	a := &Agent{site: cfg.SiteID, load: cfg.Loader, log: log, store: store, router: NewRouter(cfg.SiteID, cfg.Vectorizer, log), maxModel: cfg.MaxModelBytes}
	if a.maxModel <= 0 {
		a.maxModel = DefaultMaxModelBytes
	}
	a.servers = cfg.Servers
	a.trust.Store(cloneTrust(cfg.Trust))
	a.SetGrandfathered(cfg.Grandfathered)
	a.router.shadow = newShadowPool(cfg.ShadowWorkers, cfg.ShadowQueue)
	// Keys before models: a model must never be served without its keys.
	if err := a.loadKeys(); err != nil {
		return nil, err
	}
	a.cfgKeys, a.keysPath = cfg.Keys, cfg.KeysFile
	if len(cfg.Keys) > 0 {
		ks := newKeySet(cfg.Keys)
		a.configured.site = &ks
	}
	if _, err := a.ReloadKeysFile(); err != nil {
		return nil, err
	}
	a.keysMu.Lock()
	a.installKeys()
	a.keysMu.Unlock()
	st := store.State()
	models := st.Models
	for len(models) > 0 {
		n := 1
		for n < len(models) && models[n].Name == models[0].Name {
			n++
		}
		name := models[0].Name
		if !a.restore(name, models[:n]) {
			// None of the current versions verifies or loads (a file
			// changed on disk): serve what served before the last change.
			var prev []StateEntry
			for _, e := range st.Previous[name] {
				if e.Name == name {
					prev = append(prev, e)
				}
			}
			if len(prev) > 0 && a.restore(name, prev) {
				a.log.Warn("edge: serving the versions the last change replaced", "model", name)
				a.refuse(name, a.Refused()[name]+"; serving the previous versions instead")
			}
		}
		models = models[n:]
	}
	a.handler = a.router.Handler()
	return a, nil
}

// restore loads the recorded versions of one model into the router, and
// reports whether it serves any.
func (a *Agent) restore(name string, entries []StateEntry) bool {
	var ws []WeightedModel
	weights := make([]int, 0, len(entries))
	for _, e := range entries {
		req := e.request()
		err := a.verifyOnDisk(e)
		var m LoadedModel
		if err == nil {
			m, err = a.loadModel(&req, a.store.Path(e.ModelRef, e.Digest), e.LoadedAt)
		}
		if err != nil {
			a.log.Error("edge: last good model not loaded; serving the others", "model", e.ModelRef.String(), "digest", e.Digest, "err", err)
			a.refuse(name, fmt.Sprintf("version %s not served since the agent started: %v", e.Version, err))
			continue
		}
		ws = append(ws, WeightedModel{LoadedModel: m, Weight: e.weight(), Shadow: e.Shadow})
		weights = append(weights, e.weight())
	}
	if len(ws) == 0 {
		return false
	}
	// The share of a version that did not load goes to those that did, in
	// proportion. A version at 0 is not promoted on its own, though: with
	// only those left the model is not served until the next deploy.
	shares := scale(weights, 100)
	if slices.Max(shares) == 0 {
		a.log.Error("edge: no loaded version of the model takes traffic; not serving it", "model", name)
		return false
	}
	for i := range ws {
		ws[i].Weight = shares[i]
	}
	if err := a.router.Set(name, ws); err != nil {
		a.log.Error("edge: last good model not served", "model", name, "err", err)
		return false
	}
	a.log.Info("edge: serving last good model", "model", name, "traffic", trafficString(ws))
	return true
}

// Deploy makes the site serve req: install the artifact (downloading through
// fetch unless it is on disk already), load it, record it in state.json and
// swap it into the router. With req.Weight nil and no Shadow the version
// takes all the traffic and replaces the others (see DeployRequest for the
// alternatives). State is written only after the model loaded, so a model
// that fails to load never becomes last good and what served keeps serving.
// Deploying what is already served the same way is a no-op with Changed
// false: deploy activities are retried.
func (a *Agent) Deploy(ctx context.Context, req DeployRequest, fetch FetchFunc) (DeployResult, error) {
	if err := req.Validate(); err != nil {
		return DeployResult{}, fmt.Errorf("edge: deploy: %w", err)
	}
	defer a.lockModel(req.Model.Name)()
	defer a.settleServers(req.Model.Name)

	res := DeployResult{Site: a.site, Model: req.Model, Digest: req.Digest}
	cur := a.router.Versions(req.Model.Name)
	if m, ok := unchanged(cur, &req); ok && a.recorded(req.Model.Name, cur) {
		res.LoadedAt = m.LoadedAt
		return res, nil
	}
	others, weight, err := split(cur, &req)
	if err != nil {
		return DeployResult{}, fmt.Errorf("edge: deploy %s: %w", req.Model, err)
	}
	// Install even when the version is loaded already (its weight changes):
	// it proves the file that the next start loads is still there and intact.
	path, err := a.store.Install(ctx, req, fetch)
	if err != nil {
		return DeployResult{}, err
	}
	m, ok := loaded(cur, &req)
	if !ok {
		m, ok = a.recall(req.Model, req.Digest)
	}
	if !ok {
		if m, err = a.loadModel(&req, path, time.Now().UTC()); err != nil {
			return DeployResult{}, fmt.Errorf("edge: deploy %s: %w", req.Model, err)
		}
	}
	next := append(others, WeightedModel{LoadedModel: m, Weight: weight, Shadow: req.Shadow})
	if err := a.commit(req.Model.Name, next); err != nil {
		return DeployResult{}, fmt.Errorf("edge: deploy %s: %w", req.Model, err)
	}
	a.log.Info("edge: deployed", "model", req.Model.String(), "digest", req.Digest, "traffic", trafficString(next))
	res.Changed, res.LoadedAt = true, m.LoadedAt
	return res, nil
}

// lockModel serialises changes to the versions of one model and returns
// the unlock.
func (a *Agent) lockModel(name string) func() {
	mu, _ := a.deploys.LoadOrStore(name, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock
}

// loadModel reads the artifact of req at path, checks it against the
// digest (a bit flip on disk must not become a wrong prediction) and loads
// it. Errors about the artifact itself carry modelfleet.EINVALID: retrying
// will not make the same bytes load.
func (a *Agent) loadModel(req *DeployRequest, path string, loadedAt time.Time) (m LoadedModel, err error) {
	if err := req.Validate(); err != nil {
		return m, err
	}
	if req.Server != nil {
		return a.loadServed(req, path, loadedAt)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return m, err
	}
	if limit := a.maxModel; limit > 0 && fi.Size() > limit {
		return m, modelfleet.Errorf(modelfleet.EINVALID, "model %s is %d bytes, over this site's limit of %d for a model file", req.Model, fi.Size(), limit)
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

// Close stops the shadow workers and the external model servers. The
// handler keeps answering.
func (a *Agent) Close() {
	a.router.Close()
	if a.servers != nil {
		a.servers.Close()
	}
}

// Served lists the model versions the router serves.
func (a *Agent) Served() []modelfleet.ServedModel { return a.router.Served() }

// Handler is the router's HTTP API (see Router.Handler).
func (a *Agent) Handler() http.Handler { return a.handler }

// Router is the agent's inference router, for its metrics registry.
func (a *Agent) Router() *Router { return a.router }

// Site is the site ID.
func (a *Agent) Site() string { return a.site }
