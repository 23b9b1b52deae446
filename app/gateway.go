package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"
	"go.temporal.io/sdk/client"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/events"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/httpjson"
	"github.com/modelfleet/modelfleet/orchestrator"
	"github.com/modelfleet/modelfleet/queue"
	"github.com/modelfleet/modelfleet/telemetry"
)

// DefaultGatewayAddr is where the gateway listens by default.
const DefaultGatewayAddr = "127.0.0.1:8080"

// GatewayConfig configures the gateway process.
type GatewayConfig struct {
	Addr     string // listen address (default DefaultGatewayAddr)
	DataDir  string // the site directory lives in DataDir/sites.db
	Temporal client.Client
	// Queues are served at /api/queues/{name} (admin, and sends from sites
	// that reach the cloud over HTTP only). Nil: none.
	Queues []*queue.Queue
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
	Pull   *PullConfig
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
	mux       *http.ServeMux
	http      *httpjson.Server
	dataDir   string
	stopPull  context.CancelFunc
	pullDone  chan struct{}
}

// Handle adds an API the gateway serves beside its own, e.g. the drift
// monitor's (GET /api/monitor) where it runs in the same process.
func (g *Gateway) Handle(pattern string, h http.Handler) { g.mux.Handle(pattern, h) }

// OpenGateway opens the site directory and binds the listener; call Serve.
func OpenGateway(cfg GatewayConfig) (*Gateway, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultGatewayAddr
	}
	log := orDefault(cfg.Logger).With("component", "gateway")
	dir, err := fleet.Open(filepath.Clean(cfg.DataDir))
	if err != nil {
		return nil, err
	}
	reg := telemetry.NewRegistry()
	mux := http.NewServeMux()
	disp := events.NewTemporalDispatcher(orchestrator.New(cfg.Temporal), log, reg)
	disp.DriftMonitors = cfg.DriftMonitors
	disp.Retrain = cfg.Retrain
	var webhook http.Handler = events.NewHandler(disp, events.HandlerOptions{Logger: log, Registerer: reg})
	if cfg.EventAuth != nil {
		a := *cfg.EventAuth
		a.Logger, a.Registerer = log, reg
		if webhook, err = events.Authenticate(webhook, a); err != nil {
			dir.Close()
			return nil, fmt.Errorf("gateway: webhook auth: %w", err)
		}
	}
	mux.Handle("/api/events", webhook)
	// Everything else under /api/ is the directory: sites, their desired
	// state, rollouts and policies.
	mux.Handle("/api/", dir.Handler())
	if len(cfg.Queues) > 0 {
		mux.Handle("/api/queues/", queue.NewHandler(cfg.Queues...))
	}
	mux.HandleFunc("GET /healthz", healthz)
	mux.Handle("GET /metrics", metricsHandler(reg))
	srv, err := httpjson.Listen(cfg.Addr, mux)
	if err != nil {
		dir.Close()
		return nil, fmt.Errorf("gateway: listen %s: %w", cfg.Addr, err)
	}
	g := &Gateway{Directory: dir, mux: mux, http: srv, dataDir: cfg.DataDir}
	if p := cfg.Pull; p != nil {
		rc, err := aznamespaces.NewReceiverClientWithSharedKeyCredential(p.Endpoint, p.Topic, p.Subscription, azcore.NewKeyCredential(p.Key), nil)
		if err != nil {
			srv.Close()
			dir.Close()
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
	srv.Start(log, "gateway")
	log.Info("gateway listening", "url", g.URL(), "webhook", g.URL()+"/api/events")
	return g, nil
}

// URL is the gateway's base URL.
func (g *Gateway) URL() string { return g.http.URL() }

// Close stops serving and closes the directory.
func (g *Gateway) Close() error {
	if g.stopPull != nil {
		g.stopPull()
		<-g.pullDone
	}
	g.http.Close()
	return g.Directory.Close()
}
