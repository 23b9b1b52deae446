package workers

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
)

// Activity outcomes, the outcome label of ActivityMetric.
const (
	OutcomeOK       = "ok"
	OutcomeError    = "error"
	OutcomeCanceled = "canceled"
)

// ActivityMetric is the name of the counter of activity executions by
// activity_type and outcome; Prometheus shows it with a _total suffix.
// The SDK's own metrics (temporal_activity_execution_failed,
// temporal_activity_schedule_to_start_latency, ...) say how Temporal sees
// the activities; this says what they did.
const ActivityMetric = "modelfleet_worker_activities"

// activityOutcomes counts every activity the worker executes, by type and
// outcome. As a client interceptor that is also a worker interceptor, it
// applies to every worker of the client.
type activityOutcomes struct {
	interceptor.ClientInterceptorBase
	interceptor.WorkerInterceptorBase
	count metric.Int64Counter
}

func newActivityOutcomes(m metric.Meter) (*activityOutcomes, error) {
	c, err := m.Int64Counter(ActivityMetric, metric.WithDescription("Activity executions by activity type and outcome (ok, error, canceled)."))
	if err != nil {
		return nil, fmt.Errorf("temporal: activity counter: %w", err)
	}
	return &activityOutcomes{count: c}, nil
}

func (o *activityOutcomes) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &activityOutcome{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, count: o.count}
}

type activityOutcome struct {
	interceptor.ActivityInboundInterceptorBase
	count metric.Int64Counter
}

func (a *activityOutcome) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	res, err := a.Next.ExecuteActivity(ctx, in)
	outcome := OutcomeOK
	switch {
	case errors.Is(err, context.Canceled):
		outcome = OutcomeCanceled
	case err != nil && !errors.Is(err, activity.ErrResultPending):
		outcome = OutcomeError
	}
	a.count.Add(ctx, 1, metric.WithAttributes(
		attribute.String("activity_type", activity.GetInfo(ctx).ActivityType.Name),
		attribute.String("outcome", outcome)))
	return res, err
}
