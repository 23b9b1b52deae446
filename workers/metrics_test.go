package workers

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

func okActivity(context.Context) error { return nil }
func badActivity(context.Context) error {
	return temporal.NewNonRetryableApplicationError("no", "Bad", nil)
}

func twoActivities(ctx workflow.Context) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	_ = workflow.ExecuteActivity(ctx, okActivity).Get(ctx, nil)
	_ = workflow.ExecuteActivity(ctx, okActivity).Get(ctx, nil)
	return workflow.ExecuteActivity(ctx, badActivity).Get(ctx, nil)
}

// The worker's /metrics counts every activity by type and outcome.
func TestActivityOutcomesByType(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	outcomes, err := newActivityOutcomes(mp.Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{outcomes}})
	env.RegisterWorkflow(twoActivities)
	env.RegisterActivity(okActivity)
	env.RegisterActivity(badActivity)
	env.ExecuteWorkflow(twoActivities)
	if err := env.GetWorkflowError(); err == nil {
		t.Fatal("workflow succeeded, want the bad activity's error")
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[[2]string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != ActivityMetric {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				typ, _ := dp.Attributes.Value(attribute.Key("activity_type"))
				out, _ := dp.Attributes.Value(attribute.Key("outcome"))
				got[[2]string{typ.AsString(), out.AsString()}] += dp.Value
			}
		}
	}
	want := map[[2]string]int64{{"okActivity", OutcomeOK}: 2, {"badActivity", OutcomeError}: 1}
	if len(got) != len(want) {
		t.Fatalf("counts = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%v = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}
