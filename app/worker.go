package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/drivers"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/httpjson"
	"github.com/modelfleet/modelfleet/orchestrator"
	"github.com/modelfleet/modelfleet/registry"
	"github.com/modelfleet/modelfleet/telemetry"
	"github.com/modelfleet/modelfleet/workers"
)

// WorkerConfig configures the cloud worker.
type WorkerConfig struct {
	Temporal    client.Client
	RegistryURL string // the embedded model registry, when Registry is nil
	// Registry is the model registry validation and retraining read and
	// register into (Azure ML's in Azure mode, registry/azureml). Nil: the
	// embedded registry at RegistryURL.
	Registry   modelfleet.RetrainRegistry
	GatewayURL string // the site directory
	// GatewayClient reaches the gateway (TLS and the worker's bearer
	// token, auth.Client). Nil: plain HTTP.
	GatewayClient *http.Client
	// MirrorArtifacts copies every artifact to the gateway for the sites,
	// not only those they could not otherwise reach (Azure blob storage):
	// then sites talk to nothing but the gateway. The embedded registry
	// is then reached with GatewayClient's credentials.
	MirrorArtifacts bool
	Logger          *slog.Logger
	// Retraining runs retraining jobs and the champion/challenger gate.
	// Nil: no compute policies (jobs submitted elsewhere), champions from
	// the release history.
	Retraining *activities.Retraining
	// Drivers configures the non-agent deployment drivers; sites whose
	// registration names one are reconciled from the worker. Zero: agent
	// sites only.
	Drivers drivers.Config
	// MetricsAddr, if set, is where the worker serves GET /metrics (the
	// Metrics registry: process, Go runtime, and whatever the Temporal
	// client records into it — see workers.Connection.Meter), /healthz
	// (the process runs) and /readyz (the worker polls and Temporal
	// answers). Metrics nil: a registry of the process alone.
	MetricsAddr string
	Metrics     *prometheus.Registry
	// ReleaseSigner signs each validated version's release statement
	// (ReleaseKeys from --release-keys). Nil: versions travel unsigned,
	// and sites that pinned release keys refuse them.
	ReleaseSigner modelfleet.ReleaseSigner
}

// StartCloudWorker starts the worker that runs the workflows and the cloud
// activities. Stop it with Stop().
func StartCloudWorker(cfg WorkerConfig) (worker.Worker, error) {
	dir := &fleet.Client{BaseURL: cfg.GatewayURL, HTTPClient: cfg.GatewayClient}
	set, err := drivers.NewSet(cfg.Drivers)
	if err != nil {
		return nil, err
	}
	reg := cfg.Registry
	if reg == nil {
		reg = &registry.Client{BaseURL: cfg.RegistryURL, HTTPClient: cfg.GatewayClient}
	}
	a := &activities.Cloud{
		Registry:        reg,
		Fleet:           dir,
		Baselines:       dir,
		Artifacts:       dir,
		MirrorArtifacts: cfg.MirrorArtifacts,
		Signer:          cfg.ReleaseSigner,
		Modules:         dir,
	}
	// Every release's plan is checked with its sites' drivers (Azure ML's
	// quotas for amlarc) before any site changes.
	a.Drivers = &drivers.Check{Drivers: set, Desired: dir}
	rt := cfg.Retraining
	if rt == nil {
		rt = &activities.Retraining{}
	}
	if rt.Registry == nil {
		rt.Registry = reg
	}
	if rt.Champions == nil {
		rt.Champions = orchestrator.New(cfg.Temporal)
	}
	w := workers.NewCloud(cfg.Temporal, a, rt)
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("cloud worker: %w", err)
	}
	log := orDefault(cfg.Logger)
	s := &stopping{Worker: w}
	if cfg.Drivers.AMLArc != nil || cfg.Drivers.GitOps != nil {
		ctx, cancel := context.WithCancel(context.Background())
		rec := &drivers.Reconciler{Dir: dir, Drivers: set, Log: log.With("component", "drivers")}
		go func() { _ = rec.Run(ctx) }()
		s.stops = append(s.stops, cancel)
	}
	if cfg.MetricsAddr != "" {
		reg := cfg.Metrics
		if reg == nil {
			reg = telemetry.NewRegistry()
		}
		srv, err := httpjson.Listen(cfg.MetricsAddr, workerHTTP(reg, func(ctx context.Context) error {
			_, err := cfg.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		}))
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("cloud worker: metrics listener: %w", err)
		}
		srv.Start(log, "worker metrics")
		s.stops = append(s.stops, srv.Close)
		log.Info("cloud worker metrics", "url", srv.URL()+"/metrics")
	}
	log.Info("cloud worker started", "registry", cfg.RegistryURL, "sites", cfg.GatewayURL)
	return s, nil
}

// stopping stops what runs beside the worker (the driver reconciler, the
// metrics server) with it.
type stopping struct {
	worker.Worker
	stops []func()
}

func (s *stopping) Stop() {
	s.Worker.Stop()
	for _, stop := range s.stops {
		stop()
	}
}

// workerHTTP serves the worker's /metrics, /healthz, and /readyz: ready
// while Temporal answers (a worker whose frontend is gone polls nothing;
// the worker itself started before this is served).
func workerHTTP(reg *prometheus.Registry, temporalHealth func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler(reg))
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := temporalHealth(ctx); err != nil {
			httpjson.Write(w, http.StatusServiceUnavailable, map[string]string{"status": "unready", "reason": "temporal: " + err.Error()})
			return
		}
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	return mux
}

// readyTimeout bounds /readyz's call to Temporal, well inside a probe's
// default timeout.
const readyTimeout = 2 * time.Second
