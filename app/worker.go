package app

import (
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/registry"
	"github.com/modelfleet/modelfleet/workers"
)

// WorkerConfig configures the cloud worker.
type WorkerConfig struct {
	Temporal    client.Client
	RegistryURL string // the model registry the validation step reads
	GatewayURL  string // the site directory
	Logger      *slog.Logger
}

// StartCloudWorker starts the worker that runs the workflows and the cloud
// activities. Stop it with Stop().
func StartCloudWorker(cfg WorkerConfig) (worker.Worker, error) {
	a := &activities.Cloud{
		Registry: &registry.Client{BaseURL: cfg.RegistryURL},
		Fleet:    &fleet.Client{BaseURL: cfg.GatewayURL},
	}
	w := workers.NewCloud(cfg.Temporal, a)
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("cloud worker: %w", err)
	}
	orDefault(cfg.Logger).Info("cloud worker started", "registry", cfg.RegistryURL, "sites", cfg.GatewayURL)
	return w, nil
}
