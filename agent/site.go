// Package agent is a site's edge agent: it opens the site's model store and
// inference router (package edge), serving its last good models before it
// connects to anything, then pulls the site's desired state from a
// DesiredSource (the gateway, or a mounted file), applies it model by model
// and workload by workload, and reports what it serves. Beside that loop it
// measures what the router scores and sends the signal messages the drift
// monitor consumes. Every connection it makes is outbound; it holds no
// Temporal credential.
//
// `modelfleet edge` and the embedded stack's sites (`modelfleet dev`) are
// both built by Open.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/edge"
	"github.com/modelfleet/modelfleet/httpjson"
	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/queue"
)

// DefaultHeartbeat is how often an edge agent reports to the site directory.
const DefaultHeartbeat = 10 * time.Second

// Config configures the edge agent of one site. A site holds no Temporal
// credential and never dials Temporal; every connection it makes is
// outbound: to the gateway (desired state, reports), to where its artifacts
// are, and to where its signals go.
type Config struct {
	SiteID       string
	DataDir      string // the site's own directory: models and state.json
	Listen       string // inference router address, e.g. 127.0.0.1:9001
	AdvertiseURL string // router URL recorded in the directory (default: http://<bound address>)
	GatewayURL   string // site directory, reached outbound
	Labels       map[string]string
	// HeartbeatInterval is how often the site reports (default
	// DefaultHeartbeat): the gateway's long-poll wait, or how often the
	// desired-state file is re-read.
	HeartbeatInterval time.Duration
	// SignalInterval is how often the agent closes a monitoring window per
	// model version and queues its signal message (default
	// signals.DefaultInterval).
	SignalInterval time.Duration
	// SignalSender is where signal messages go: Service Bus in Azure mode.
	// Nil: the gateway's embedded queue (GatewayURL/api/queues/signals);
	// with no gateway either, figures are only exposed at /metrics.
	SignalSender queue.Sender
	// DesiredFile, if set, is where the site's desired state comes from (a
	// JSON modelfleet.Desired, e.g. the ConfigMap the gitops driver
	// commits), re-read every HeartbeatInterval, instead of the gateway.
	DesiredFile string
	// NoSignals turns the monitoring loop off: no signal messages, no
	// signal figures at /metrics (thousands of simulated sites in one
	// benchmark process, where each site's buffer file would count).
	NoSignals bool
	// ExternalWorkloads says the site's workloads run as processes of their
	// own (`modelfleet workload run`, a Deployment the gitops driver
	// renders), not in this agent: the agent then reports none, instead of
	// failing each for want of its code.
	ExternalWorkloads bool
	// ExternalWorkloadHealth is the URL of each external workload's GET
	// /healthz, {name} the workload (default
	// DefaultExternalWorkloadHealth; "none": not asked, none reported),
	// and ExternalWorkloadGrace how long one may take to run the desired
	// version before it is reported failed (default
	// DefaultExternalWorkloadGrace).
	ExternalWorkloadHealth string
	ExternalWorkloadGrace  time.Duration
	// JoinToken enrols a site that has no identity yet (`modelfleet site
	// enroll` prints one): with an https:// gateway, Run enrols before it
	// pulls, keeps the identity in <DataDir>/identity and renews it. A
	// site already enrolled needs none.
	JoinToken string
	// GatewayClient reaches the gateway. Nil: Run builds it from the
	// site's identity (mTLS) for an https:// gateway, else plain HTTP.
	GatewayClient *http.Client
	Logger        *slog.Logger
	// ReleaseKeysFile, if set, pins the release keys (a JSON
	// modelfleet.Trust) by hand; default <DataDir>/identity/
	// release-keys.json, written at enrolment. A site with release keys
	// loads only versions they signed (trust.go).
	ReleaseKeysFile string
	// ArtifactHosts, if set, are the only hosts artifacts are downloaded
	// from ("host" or "host:port"); DownloadTimeout bounds a download
	// (default DefaultDownloadTimeout).
	ArtifactHosts   []string
	DownloadTimeout time.Duration
	// APIKeysFile, if set, is the router API keys file (a mounted Secret;
	// edge.KeysFile), read before the router serves and every
	// APIKeysPoll (default edge.DefaultKeysFilePoll) after. Its scopes win
	// over the desired state's (docs/security.md, "Router API keys").
	APIKeysFile string
	APIKeysPoll time.Duration
	// OIPServers are the external model servers the site's operator
	// allows versions to run in (`--oip-server NAME=PATH`; servers.go).
	// None: a version naming a server fails to load.
	OIPServers []OIPServer
	// ServerReadyTimeout bounds how long a started server may take to be
	// ready (default DefaultServerReadyTimeout).
	ServerReadyTimeout time.Duration
}

// Site is a running edge agent: the router serves from disk as soon as Open
// returns; Run connects outward (desired state and reports).
type Site struct {
	// Edge is the site's model store and inference router. Run does not
	// close it: close it after Run returns.
	Edge *edge.Agent
	cfg  Config
	http *httpjson.Server
	log  *slog.Logger
	sig  *edgeSignals
	// servers runs the site's external model servers; nil when it declares none.
	servers *serverHost
	// workload is the workload hosted beside the agent (RunWorkload), nil
	// if none.
	workload atomic.Pointer[workloadHost]
	// converge loop state: the last revision applied and each model's error
	lastApplied int64
	lastError   map[string]string
	// the last release key set checked (learnKeys), and with which trust
	lastKeyTrust *modelfleet.Trust
	lastKeyEnv   *modelfleet.Envelope
	lastKeyTag   string
	// apiKeysError is why the desired state's router API keys were last
	// refused ("" taken), reported with every actual state.
	apiKeysError string
	external     externalWorkloads
}

// Open opens the site's store, loads its last good models and starts the
// router, before connecting to anything: an offline site keeps serving.
func Open(cfg Config) (*Site, error) {
	if err := modelfleet.ValidateName("site id", cfg.SiteID); err != nil {
		return nil, err
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeat
	}
	log := orDefault(cfg.Logger).With("component", "edge", "site", cfg.SiteID)
	tp := cfg.ReleaseKeysFile
	if tp == "" {
		tp = trustPath(cfg.DataDir)
	}
	trust, err := LoadTrust(tp)
	if err != nil {
		return nil, fmt.Errorf("edge %s: %w", cfg.SiteID, err)
	}
	if cfg.ReleaseKeysFile != "" && trust == nil {
		return nil, fmt.Errorf("edge %s: release keys file %s does not exist", cfg.SiteID, cfg.ReleaseKeysFile)
	}
	grand, recorded, err := loadGrandfathered(filepath.Join(cfg.DataDir, grandfatheredFile))
	if err != nil {
		return nil, fmt.Errorf("edge %s: %w", cfg.SiteID, err)
	}
	if trust != nil && !recorded {
		// Keys pinned by hand (or a site upgraded with keys): what
		// state.json lists ran before them, once.
		if grand, err = grandfatherState(cfg.DataDir); err != nil {
			return nil, fmt.Errorf("edge %s: %w", cfg.SiteID, err)
		}
	}
	var servers *serverHost
	ecfg := edge.Config{}
	if len(cfg.OIPServers) > 0 {
		if servers, err = newServerHost(cfg.OIPServers, filepath.Join(cfg.DataDir, "servers"), cfg.ServerReadyTimeout, log); err != nil {
			return nil, fmt.Errorf("edge %s: %w", cfg.SiteID, err)
		}
		ecfg.Servers = servers // not a nil *serverHost in the interface
	}
	store, err := edge.Open(cfg.DataDir, edge.Config{
		Servers:       ecfg.Servers,
		Trust:         trust,
		Grandfathered: grand,
		SiteID:        cfg.SiteID,
		Loader:        func(format string, data []byte) (edge.Scorer, error) { return inference.Load(format, data) },
		Vectorizer:    inference.Vector,
		Logger:        log,
		KeysFile:      cfg.APIKeysFile,
	})
	if err != nil {
		if servers != nil {
			servers.Close()
		}
		return nil, err
	}
	if servers != nil {
		if err := servers.register(store.Router().Registry(), cfg.SiteID); err != nil {
			store.Close()
			return nil, fmt.Errorf("edge %s: %w", cfg.SiteID, err)
		}
	}
	var sig *edgeSignals
	if !cfg.NoSignals {
		if sig, err = openSignals(cfg, store, log); err != nil {
			return nil, err
		}
	}
	srv, err := httpjson.Listen(cfg.Listen, store.Handler())
	if err != nil {
		if sig != nil {
			sig.buf.Close()
		}
		store.Close()
		return nil, fmt.Errorf("edge %s: listen %s: %w", cfg.SiteID, cfg.Listen, err)
	}
	if cfg.AdvertiseURL == "" {
		cfg.AdvertiseURL = srv.URL()
	}
	srv.Start(log, "router")
	log.Info("inference router serving", "url", cfg.AdvertiseURL, "models", len(store.Served()))
	if trust == nil {
		log.Warn("no release keys pinned: versions load unsigned until the site enrols")
	}
	// Why a version was not restored is reported until the next apply.
	return &Site{Edge: store, cfg: cfg, http: srv, log: log, sig: sig, servers: servers, lastError: store.Refused()}, nil
}

// Record is the site's record in the directory, which its reports carry.
func (s *Site) Record() modelfleet.Site {
	return modelfleet.Site{
		ID:        s.cfg.SiteID,
		RouterURL: s.cfg.AdvertiseURL,
		// Nothing polls it (sites run no Temporal worker), but a gateway
		// requires the field in a site record.
		TaskQueue: modelfleet.SiteTaskQueue(s.cfg.SiteID),
		Labels:    s.cfg.Labels,
		Serving:   s.Edge.Served(),
	}
}

// SetJoinToken gives a site that has not enrolled its join token; call
// it before Run.
func (s *Site) SetJoinToken(token string) { s.cfg.JoinToken = token }

// Enrolled reports whether the site holds an identity.
func (s *Site) Enrolled() bool {
	id, err := LoadIdentity(identityDir(s.cfg.DataDir), s.cfg.SiteID)
	return err == nil && id != nil
}

// SetGateway points the site at its gateway; call it before Run. The
// embedded stack opens its sites first, so they serve from disk while the
// rest starts, and learns the gateway's address after.
func (s *Site) SetGateway(url string) { s.cfg.GatewayURL = url }

// Run pulls the site's desired state from the source its Config names
// (NewSource) and reports what it serves, outbound only and retrying while
// offline, until ctx is done. With no source the site serves what it has.
func (s *Site) Run(ctx context.Context) error {
	defer s.http.Close()
	var id *Identity
	if s.cfg.GatewayClient == nil && strings.HasPrefix(s.cfg.GatewayURL, "https://") && s.cfg.DesiredFile == "" {
		id = s.identity(ctx)
		if id == nil {
			<-ctx.Done()
			return nil
		}
		t, err := id.Transport()
		if err != nil {
			return err
		}
		s.cfg.GatewayClient = &http.Client{Transport: t}
		go s.renew(ctx, id)
	}
	keysDone := make(chan struct{})
	go func() { s.Edge.WatchKeysFile(ctx, s.cfg.APIKeysPoll); close(keysDone) }()
	defer func() { <-keysDone }()
	s.sig.connect(s.cfg, id)
	sigDone := make(chan struct{})
	go func() { s.sig.run(ctx); close(sigDone) }()
	defer func() { <-sigDone }()
	if src := NewSource(s.cfg, s.log); src != nil {
		s.converge(ctx, src)
	}
	<-ctx.Done()
	return nil
}
