package app

import (
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"

	"go.temporal.io/sdk/client"

	"github.com/modelfleet/modelfleet/events"
	"github.com/modelfleet/modelfleet/fleet"
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
	Logger *slog.Logger
}

// Gateway is the control plane's HTTP front: the Event Grid webhook
// (POST/OPTIONS /api/events), the site directory (/api/sites), /healthz and
// /metrics.
type Gateway struct {
	Directory *fleet.Directory
	http      *httpServer
	dataDir   string
}

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
	mux.Handle("/api/events", events.NewHandler(
		events.NewTemporalDispatcher(cfg.Temporal, log, reg),
		events.HandlerOptions{Logger: log, Registerer: reg},
	))
	// Everything else under /api/ is the directory: sites, their desired
	// state, rollouts and policies.
	mux.Handle("/api/", dir.Handler())
	if len(cfg.Queues) > 0 {
		mux.Handle("/api/queues/", queue.NewHandler(cfg.Queues...))
	}
	mux.HandleFunc("GET /healthz", healthz)
	mux.Handle("GET /metrics", metricsHandler(reg))
	srv, err := listen(cfg.Addr, mux)
	if err != nil {
		dir.Close()
		return nil, fmt.Errorf("gateway: listen %s: %w", cfg.Addr, err)
	}
	g := &Gateway{Directory: dir, http: srv, dataDir: cfg.DataDir}
	srv.serve(log, "gateway")
	log.Info("gateway listening", "url", g.URL(), "webhook", g.URL()+"/api/events")
	return g, nil
}

// URL is the gateway's base URL.
func (g *Gateway) URL() string { return g.http.URL() }

// Close stops serving and closes the directory.
func (g *Gateway) Close() error {
	g.http.close()
	return g.Directory.Close()
}
