package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/agent"
	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/drift"
	"github.com/modelfleet/modelfleet/events"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/httpjson"
	"github.com/modelfleet/modelfleet/orchestrator"
	"github.com/modelfleet/modelfleet/queue"
	"github.com/modelfleet/modelfleet/signals"
	"github.com/modelfleet/modelfleet/telemetry"
	"github.com/modelfleet/modelfleet/ui"
)

// DefaultGatewayAddr is where the gateway listens by default.
const DefaultGatewayAddr = "127.0.0.1:8080"

// GatewayConfig configures the gateway process.
type GatewayConfig struct {
	Addr    string // listen address (default DefaultGatewayAddr)
	DataDir string // the site directory lives in DataDir/sites.db, the drift monitor's windows in DataDir/monitor.db
	// MaxLongPolls caps the sites' desired-state long polls held open at
	// once (default fleet.DefaultMaxLongPolls).
	MaxLongPolls int
	Temporal     client.Client
	// Orchestrator, if set, is used instead of Temporal (tests).
	Orchestrator modelfleet.Orchestrator
	// Signals is where the sites' signal messages arrive for the drift
	// monitor the gateway runs: Service Bus in Azure mode. Nil: the
	// embedded queue, opened in QueueDir (default DataDir/queue) and served
	// at /api/queues/signals, where the agents send.
	Signals queue.Receiver
	// SignalRelay, with Signals on Service Bus, is where the gateway
	// forwards the signal messages sites send it (POST
	// /api/queues/signals/messages, over mTLS, stamped with the sender's
	// site), with the gateway's own Entra identity: the sites then hold no
	// Service Bus credential. Nil: the gateway takes no signal messages
	// (sites with their own identity send to Service Bus themselves).
	SignalRelay queue.Sender
	QueueDir    string
	// Store, if set, is the PostgreSQL database (a postgres:// DSN) that
	// keeps the fleet directory and the embedded signal queue, shared by
	// any number of gateway replicas. Empty: bbolt files in DataDir and
	// QueueDir, one replica (the embedded default).
	Store string
	// StoreCredential, if set, authenticates to Store with Microsoft
	// Entra ID (Azure Database for PostgreSQL): each new connection's
	// password is an access token from it (pgdb.Options.Credential), and
	// Store names the Entra principal as its user, with no password.
	StoreCredential azcore.TokenCredential
	// Monitor tunes the drift monitor (lookback, minimum rows, reference,
	// thresholds); zero values take its defaults.
	Monitor drift.Options
	// EventAuth, if set, authenticates webhook deliveries (shared keys
	// and/or Entra bearer tokens). Nil: the webhook is open, as in the
	// embedded stack on loopback.
	EventAuth *events.AuthOptions
	// Retrain is the input a retraining started by an Azure ML drift event
	// gets (debounce, cooldown); zero values take the workflow's defaults.
	Retrain modelfleet.RetrainInput
	// DriftMonitors maps an Azure ML data drift monitor's name to the model
	// it watches, for DatasetDriftDetected events that do not say.
	DriftMonitors map[string]string
	// Pull, if set, also receives events from an Event Grid namespace
	// topic subscription (pull delivery) besides the webhook.
	Pull *PullConfig
	// TemporalUI is the Temporal UI's base URL the dashboard links
	// releases to (empty: no links).
	TemporalUI string
	// Auth turns authentication and authorisation on (TLS, OIDC tokens,
	// site certificates, the role model; docs/security.md). Nil: every
	// endpoint is open, as in the benchmarks' baseline and in-process
	// tests; the gateway command and the embedded stack always set it.
	Auth   *AuthConfig
	Logger *slog.Logger
}

// PullConfig names an Event Grid namespace topic subscription.
type PullConfig struct {
	Endpoint, Topic, Subscription string
	Key                           string // shared access key (never logged)
}

// Gateway is the control plane's HTTP front: the Event Grid webhook
// (POST/OPTIONS /api/events), the site directory (/api/sites), /healthz and
// /metrics.
type Gateway struct {
	Directory *fleet.Directory
	// Signals is the embedded signal queue (nil when the monitor consumes
	// Service Bus), and Monitor the drift monitor consuming it.
	Signals     queue.Store
	Monitor     *Monitor
	monitor     atomic.Pointer[Monitor] // Monitor, for the UI's sampler, which starts first
	pool        *pgxpool.Pool           // the shared database, with Store
	stopMonitor func()
	mux         *http.ServeMux
	http        *httpjson.Server
	dataDir     string
	stopPull    context.CancelFunc
	pullDone    chan struct{}
	sec         *security
	url         string
	ui          *ui.Handler
}

// Handle adds an API the gateway serves beside its own, e.g. the drift
// monitor's (GET /api/monitor) where it runs in the same process.
func (g *Gateway) Handle(pattern string, h http.Handler) { g.mux.Handle(pattern, h) }

// OpenGateway opens the site directory and the embedded signal queue,
// starts serving and starts the drift monitor; Close stops it all. The
// gateway command and the embedded stack (RunDev) both build the gateway
// here, so `modelfleet dev` runs the production wiring.
func OpenGateway(cfg GatewayConfig) (g *Gateway, err error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultGatewayAddr
	}
	if cfg.QueueDir == "" {
		cfg.QueueDir = filepath.Join(cfg.DataDir, "queue")
	}
	log := orDefault(cfg.Logger).With("component", "gateway")
	g = &Gateway{dataDir: cfg.DataDir}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	if err := g.openStores(cfg, log); err != nil {
		return nil, err
	}
	g.Directory.SetMaxLongPolls(cfg.MaxLongPolls)
	sigq := cfg.Signals
	if sigq == nil {
		sigq = g.Signals
	}
	var o modelfleet.Orchestrator = cfg.Orchestrator
	to := orchestrator.New(cfg.Temporal)
	if o == nil {
		o = to
	}
	reg := telemetry.NewRegistry()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("gateway: listen %s: %w", cfg.Addr, err)
	}
	if cfg.Auth != nil {
		if g.sec, g.url, err = openSecurity(cfg.Auth, cfg.DataDir, ln, g.pool, log, reg); err != nil {
			ln.Close()
			return nil, err
		}
		to.ControlKeys = g.sec.ControlKeys()
		// Every desired state carries the signed release key set: how
		// sites learn a rotation or a revocation.
		g.Directory.SetReleaseKeys(g.sec.release.KeySet())
		// Router API key sets are signed with the same keys: sites that
		// pinned them apply no other.
		g.Directory.SetAPIKeysSigner(g.sec.release)
	}
	mux := http.NewServeMux()
	disp := events.NewTemporalDispatcher(o, log, reg)
	disp.DriftMonitors = cfg.DriftMonitors
	disp.Retrain = cfg.Retrain
	var webhook http.Handler = events.NewHandler(disp, events.HandlerOptions{Logger: log, Registerer: reg})
	if cfg.EventAuth != nil {
		a := *cfg.EventAuth
		a.Logger, a.Registerer = log, reg
		if webhook, err = events.Authenticate(webhook, a); err != nil {
			return nil, fmt.Errorf("gateway: webhook auth: %w", err)
		}
	}
	mux.Handle("/api/events", webhook)
	// Everything else under /api/ is the directory: sites, their desired
	// state, rollouts and policies.
	mux.Handle("/api/", g.Directory.Handler())
	mux.Handle("PUT /api/apikeys", apiKeysHandler(g.Directory))
	var stamp queue.Stamp
	if g.sec != nil {
		stamp = stampSite
	}
	switch {
	case g.Signals != nil:
		mux.Handle("/api/queues/", queue.NewStampingHandler(stamp, g.Signals))
	case cfg.SignalRelay != nil:
		mux.Handle("/api/queues/", &queue.Relay{Name: agent.SignalQueue, Stamp: stamp, To: cfg.SignalRelay, Logger: log})
		log.Info("relaying the sites' signal messages to Service Bus")
	}
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", g.readyz)
	mux.Handle("GET /metrics", metricsHandler(reg))
	g.mux = mux
	var handler http.Handler = mux
	if g.sec != nil {
		g.sec.routes(mux, g.Directory, o)
		if err := g.mountUI(cfg, mux, o); err != nil {
			return nil, err
		}
		handler = g.sec.guard.Wrap(gatewayRules(), mux)
	}
	g.http = httpjson.NewServer(ln, handler)
	if g.sec != nil {
		g.http.UseTLS(g.sec.tls)
	}
	if p := cfg.Pull; p != nil {
		rc, err := aznamespaces.NewReceiverClientWithSharedKeyCredential(p.Endpoint, p.Topic, p.Subscription, azcore.NewKeyCredential(p.Key), nil)
		if err != nil {
			return nil, fmt.Errorf("gateway: event grid namespace %s: %w", p.Endpoint, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		g.stopPull, g.pullDone = cancel, make(chan struct{})
		go func() {
			defer close(g.pullDone)
			if err := events.NewPuller(rc, disp, events.PullOptions{Logger: log, Registerer: reg}).Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("event grid pull stopped", "error", err)
			}
		}()
		log.Info("pulling events", "endpoint", p.Endpoint, "topic", p.Topic, "subscription", p.Subscription)
	}
	// The drift monitor reads baselines from, and serves its verdicts at,
	// this gateway (docs/signals.md).
	// With auth, a message counts only from the site that sent it: by its
	// site signature, checked against the site CA and the revocations,
	// or, on the embedded queue, which only this gateway writes to, by the
	// stamp it set from the sender's certificate. On Service Bus anyone
	// with send rights could set a stamp: there the signature is required
	// (docs/security.md, Signals).
	mon := cfg.Monitor
	// Its windows live in the store beside the fleet, so a restart or
	// another replica continues them (docs/signals.md, "The monitor's
	// state").
	if mon.State == nil {
		mon.State = g.Directory.MonitorState()
	}
	if g.sec != nil {
		mon.Sites = &signals.SiteVerifier{Roots: g.sec.ca.Pool(), Revoked: g.sec.enrol.IsRevoked, RevokedCert: g.sec.crls.Revoked}
	}
	if g.Monitor, err = NewMonitor(MonitorConfig{
		Queue: sigq, Orchestrator: o, Directory: LocalDirectory{g.Directory},
		Retrain: cfg.Retrain, Drift: mon, Logger: cfg.Logger, SiteStamped: g.sec != nil && g.Signals != nil,
	}); err != nil {
		return nil, err
	}
	g.monitor.Store(g.Monitor)
	g.stopMonitor = g.Monitor.Start(context.Background(), g)
	g.http.Start(log, "gateway")
	log.Info("gateway listening", "url", g.URL(), "webhook", g.URL()+"/api/events")
	return g, nil
}

// URL is the gateway's base URL (https:// with Auth).
func (g *Gateway) URL() string {
	if g.url != "" {
		return g.url
	}
	return g.http.URL()
}

// ReleaseSigner is the release-signing keys the gateway gives sites at
// enrolment (nil without Auth): the embedded stack's worker signs with them.
func (g *Gateway) ReleaseSigner() modelfleet.ReleaseSigner {
	if g.sec == nil {
		return nil
	}
	return g.sec.release
}

// CABundle is the PEM bundle clients verify the gateway with (nil without
// Auth).
func (g *Gateway) CABundle() []byte {
	if g.sec == nil {
		return nil
	}
	return g.sec.ca.Bundle
}

// JoinToken makes a one-time enrolment token for site, as `modelfleet
// site enroll` does through the API.
func (g *Gateway) JoinToken(site string, labels map[string]string, by string) (string, error) {
	if g.sec == nil {
		return "", errors.New("gateway: no auth, no enrolment")
	}
	t, _, err := g.sec.enrol.NewJoinToken(context.Background(), site, labels, 0, by, g.sec.ca.Fingerprint())
	return t.String(), err
}

// Client returns an HTTP client for this gateway acting as one of the
// embedded issuer's identities (the credentials file name, e.g.
// "worker.token"); without Auth, a plain client.
func (g *Gateway) Client(identity string) (*http.Client, error) {
	if g.sec == nil {
		return &http.Client{}, nil
	}
	if g.sec.issuer == nil {
		return nil, errors.New("gateway: no embedded issuer to mint a credential with")
	}
	tok, err := g.sec.devToken(identity)
	if err != nil {
		return nil, err
	}
	return auth.Client(g.sec.ca.Bundle, auth.StaticToken(tok))
}

// SiteProperty is the signal message property the gateway stamps with
// the site the sender's certificate names, on its embedded queue and on
// what it relays; the monitor dead-letters a message about another site.
const SiteProperty = "modelfleet-site"

// stampSite binds a signal message to its sender.
func stampSite(r *http.Request, m *queue.Message) error {
	p := auth.From(r.Context())
	if p == nil || p.Site == "" {
		return modelfleet.Errorf(modelfleet.EFORBIDDEN, "only sites send signal messages")
	}
	if v, ok := m.Properties[SiteProperty]; ok && v != p.Site {
		return modelfleet.Errorf(modelfleet.EFORBIDDEN, "site %s may not send as %s", p.Site, v)
	}
	if m.Properties == nil {
		m.Properties = map[string]string{}
	}
	m.Properties[SiteProperty] = p.Site
	return nil
}

// Close stops the monitor, the event pull and serving, and closes the
// queue and the directory. It is safe on a gateway OpenGateway left half
// open.
func (g *Gateway) Close() error {
	if g.stopMonitor != nil {
		g.stopMonitor()
	}
	if g.ui != nil {
		g.ui.Close()
	}
	if g.stopPull != nil {
		g.stopPull()
		<-g.pullDone
	}
	if g.http != nil {
		g.http.Close()
	}
	if g.sec != nil {
		g.sec.close()
	}
	return g.closeStores()
}
