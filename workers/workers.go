// Package workers wires the Temporal worker: the cloud worker (release
// workflows and cloud activities on modelfleet.CloudTaskQueue). It also dials
// the Temporal client the cloud processes share, with tracing on. Sites run no
// Temporal worker and never dial Temporal.
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
// workflow into its activities (ApplyStep carries it on to the sites, in
// their desired state), and the transport security.
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
	if c.Meter != nil {
		opts.MetricsHandler = opentelemetry.NewMetricsHandler(opentelemetry.MetricsHandlerOptions{
			Meter: c.Meter,
			// A metric the exporter refuses must not take the worker down.
			OnError: func(err error) {
				if logger != nil {
					logger.Warn("temporal metrics", "error", err)
				}
			},
		})
		outcomes, err := newActivityOutcomes(c.Meter)
		if err != nil {
			return client.Options{}, err
		}
		opts.Interceptors = append(opts.Interceptors, outcomes)
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
