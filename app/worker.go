package app

import (
	"context"
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/drivers"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/orchestrator"
	"github.com/modelfleet/modelfleet/registry"
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
	Logger     *slog.Logger
	// Retraining runs retraining jobs and the champion/challenger gate.
	// Nil: no compute policies (jobs submitted elsewhere), champions from
	// the release history.
	Retraining *activities.Retraining
	// Drivers configures the non-agent deployment drivers; sites whose
	// registration names one are reconciled from the worker. Zero: agent
	// sites only.
	Drivers drivers.Config
}

// StartCloudWorker starts the worker that runs the workflows and the cloud
// activities. Stop it with Stop().
func StartCloudWorker(cfg WorkerConfig) (worker.Worker, error) {
	dir := &fleet.Client{BaseURL: cfg.GatewayURL}
	set, err := drivers.NewSet(cfg.Drivers)
	if err != nil {
		return nil, err
	}
	reg := cfg.Registry
	if reg == nil {
		reg = &registry.Client{BaseURL: cfg.RegistryURL}
	}
	a := &activities.Cloud{
		Registry:  reg,
		Fleet:     dir,
		Baselines: dir,
		Artifacts: dir,
	}
	// Every release's plan is checked with its sites' drivers (Azure ML's
	// quotas for amlarc) before any site changes.
	a.Drivers = &drivers.Check{Drivers: set, Desired: &fleet.Client{BaseURL: cfg.GatewayURL}}
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
	if cfg.Drivers.AMLArc != nil || cfg.Drivers.GitOps != nil {
		ctx, cancel := context.WithCancel(context.Background())
		rec := &drivers.Reconciler{Dir: &fleet.Client{BaseURL: cfg.GatewayURL}, Drivers: set, Log: orDefault(cfg.Logger).With("component", "drivers")}
		go func() { _ = rec.Run(ctx) }()
		return &stopping{Worker: w, stop: cancel}, nil
	}
	orDefault(cfg.Logger).Info("cloud worker started", "registry", cfg.RegistryURL, "sites", cfg.GatewayURL)
	return w, nil
}

// stopping stops the driver reconciler with the worker.
type stopping struct {
	worker.Worker
	stop context.CancelFunc
}

func (s *stopping) Stop() { s.stop(); s.Worker.Stop() }
