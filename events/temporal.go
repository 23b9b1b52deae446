package events

import (
	"context"
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/workflows"
)

// Search attributes set on a release at start, so releases can be listed by
// model before the workflow runs. They mirror workflows.ModelAttr,
// VersionAttr and StageAttr (a test keeps them equal) until one package owns
// them.
const (
	searchAttrModel   = "ModelfleetModel"
	searchAttrVersion = "ModelfleetVersion"
	searchAttrStage   = "ModelfleetStage"
	stagePending      = "pending" // workflows.StatePending
)

var (
	modelKey   = temporal.NewSearchAttributeKeyKeyword(searchAttrModel)
	versionKey = temporal.NewSearchAttributeKeyKeyword(searchAttrVersion)
	stageKey   = temporal.NewSearchAttributeKeyKeyword(searchAttrStage)
)

// TemporalDispatcher is the Dispatcher of the gateway: a ModelRegistered
// event starts the release workflow of that model version; other Azure ML
// events are logged and acknowledged.
type TemporalDispatcher struct {
	Client client.Client
	Logger *slog.Logger // nil: slog.Default()
	// Counter counts events by type and result; nil: not counted.
	// NewTemporalDispatcher makes and registers it.
	Counter *prometheus.CounterVec
}

// NewTemporalDispatcher returns a dispatcher whose counter is registered on
// reg (nil: counted but not registered).
func NewTemporalDispatcher(c client.Client, logger *slog.Logger, reg prometheus.Registerer) *TemporalDispatcher {
	return &TemporalDispatcher{Client: c, Logger: logger, Counter: newDispatchCounter(reg)}
}

// Dispatch implements Dispatcher. It returns nil for every event type it
// does not act on: an error would only make Event Grid retry it for 24 hours.
func (d *TemporalDispatcher) Dispatch(ctx context.Context, ev Event) error {
	log := d.logger().With("event_id", clip(ev.ID), "event_type", clip(ev.Type), "subject", clip(ev.Subject))
	switch ev.Type {
	case modelfleet.EventModelRegistered:
		return d.startRelease(ctx, log, ev)
	case modelfleet.EventModelDeployed:
		dep, err := DecodeModelDeployed(ev)
		if err != nil {
			log.Warn("model deployed event not understood; acknowledged", "error", err)
		} else {
			log.Info("azure ml model deployed (audit)", "service", dep.ServiceName, "compute", dep.ServiceComputeType, "models", len(dep.Models))
		}
		d.count(ev, "audited")
		return nil
	case modelfleet.EventDatasetDriftDetected, modelfleet.EventRunCompleted, modelfleet.EventRunStatusChanged:
		// Retraining on drift or on a finished run is a later issue.
		log.Info("azure ml event not yet handled; acknowledged")
		d.count(ev, "not_handled")
		return nil
	default:
		log.Info("unknown event type ignored; acknowledged")
		d.count(ev, "ignored")
		return nil
	}
}

// startRelease starts the release workflow. Its ID is derived from the model
// reference, and the policies make a redelivered event harmless: a running
// release is reused (USE_EXISTING), a closed one is not run again
// (REJECT_DUPLICATE), which Temporal reports as WorkflowExecutionAlreadyStarted.
func (d *TemporalDispatcher) startRelease(ctx context.Context, log *slog.Logger, ev Event) error {
	reg, err := DecodeModelRegistered(ev)
	if err != nil {
		d.count(ev, "invalid")
		return err
	}
	opts := client.StartWorkflowOptions{
		ID:                       modelfleet.ReleaseWorkflowID(reg.Model),
		TaskQueue:                modelfleet.CloudTaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		// Without it the SDK hides a closed duplicate behind a handle to the
		// old run; with it the duplicate is seen, and logged as such.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			modelKey.ValueSet(reg.Model.Name),
			versionKey.ValueSet(reg.Model.Version),
			stageKey.ValueSet(stagePending),
		),
	}
	in := workflows.ReleaseInput{Model: reg.Model, Tags: reg.Tags, Properties: reg.Properties, EventID: ev.ID}
	log = log.With("workflow_id", opts.ID)
	run, err := d.Client.ExecuteWorkflow(ctx, opts, workflows.ReleaseWorkflowName, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &started):
		log.Info("release already ran; duplicate event acknowledged")
		d.count(ev, "already_ran")
		return nil
	case err != nil:
		d.count(ev, "error")
		return err
	}
	log.Info("release started", "run_id", run.GetRunID())
	d.count(ev, "started")
	return nil
}

func (d *TemporalDispatcher) count(ev Event, result string) {
	if d.Counter != nil {
		d.Counter.WithLabelValues(typeLabel(ev.Type), result).Inc()
	}
}

func (d *TemporalDispatcher) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}
