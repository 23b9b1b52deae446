// Package workers wires Temporal workers: the cloud worker (release workflows
// and cloud activities on modelfleet.CloudTaskQueue) and one edge worker per
// site (site activities on that site's queue). It also dials the Temporal
// client every modelfleet process shares, with tracing on.
package workers

import (
	"context"
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/workflows"
)

// Defaults for reaching Temporal.
const (
	DefaultTemporalAddress = "127.0.0.1:7233"
	DefaultNamespace       = "default"
)

// Dial connects to Temporal in plaintext (the dev server); see
// Connection.Dial for TLS and API keys.
func Dial(ctx context.Context, address, namespace string, logger *slog.Logger) (client.Client, error) {
	return Connection{Address: address, Namespace: namespace}.Dial(ctx, logger)
}

// options are the client's options: the OpenTelemetry tracing interceptor,
// so the trace started by an Event Grid delivery continues through the
// workflow into the activity at the edge, and the transport security.
func (c Connection) options(logger *slog.Logger) (client.Options, error) {
	tracing, err := opentelemetry.NewTracingInterceptor(opentelemetry.TracerOptions{})
	if err != nil {
		return client.Options{}, fmt.Errorf("temporal: tracing interceptor: %w", err)
	}
	tlsCfg, err := c.TLS.Config()
	if err != nil {
		return client.Options{}, err
	}
	opts := client.Options{
		HostPort:          c.Address,
		Namespace:         c.Namespace,
		Interceptors:      []interceptor.ClientInterceptor{tracing},
		ConnectionOptions: client.ConnectionOptions{TLS: tlsCfg},
	}
	if c.APIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(c.APIKey)
	}
	if logger != nil {
		opts.Logger = tlog.NewStructuredLogger(logger.With("component", "temporal"))
	}
	return opts, nil
}

// NewCloud returns the cloud worker: the workflows and the cloud activities.
func NewCloud(c client.Client, a *activities.Cloud, r *activities.Retraining) worker.Worker {
	w := worker.New(c, modelfleet.CloudTaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.Release, workflow.RegisterOptions{Name: modelfleet.ReleaseWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.Retrain, workflow.RegisterOptions{Name: modelfleet.RetrainWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.WorkloadRelease, workflow.RegisterOptions{Name: modelfleet.WorkloadReleaseWorkflowName})
	w.RegisterActivity(a)
	w.RegisterActivity(r)
	return w
}

// NewSite returns the edge worker of one site. It polls only the site's own
// task queue: the site connects out to Temporal and nothing connects in.
func NewSite(c client.Client, siteID string, a *activities.Site) worker.Worker {
	w := worker.New(c, modelfleet.SiteTaskQueue(siteID), worker.Options{
		// A site deploys one thing at a time; its disk and router are the
		// bottleneck, not the network.
		MaxConcurrentActivityExecutionSize: 4,
	})
	w.RegisterActivity(a)
	return w
}
