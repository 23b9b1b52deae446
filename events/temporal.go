package events

import (
	"context"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelfleet/modelfleet"
)

// TemporalDispatcher is the Dispatcher of the gateway: each event becomes a
// call of its Orchestrator (orchestrator.Temporal in the gateway). What
// each Azure ML event does (docs/events.md keeps the same table):
//
//   - ModelRegistered starts the release workflow of that model version;
//   - DatasetDriftDetected, and a RunStatusChanged carrying MonitorBreachTag,
//     signal-with-start the model's retraining workflow (RetrainWorkflowID)
//     with a "trigger";
//   - RunCompleted and RunStatusChanged of a job tagged RetrainRunTag signal
//     "run-status" to that model's retraining workflow, if it runs;
//   - ModelDeployed is logged for audit; other runs and unknown types are
//     acknowledged and counted.
type TemporalDispatcher struct {
	// Orchestrator starts and signals the workflows.
	Orchestrator modelfleet.Orchestrator
	Logger       *slog.Logger // nil: slog.Default()
	// Counter counts events by type and result; nil: not counted.
	// NewTemporalDispatcher makes and registers it.
	Counter *prometheus.CounterVec
	// DriftMonitors maps a data drift monitor or monitoring signal name to
	// the model it watches, for names that do not follow the
	// MonitorSeparator convention.
	DriftMonitors map[string]string
	// Retrain is the input a retraining workflow starts with (its Model is
	// set per event); zero durations take the workflow's defaults.
	Retrain modelfleet.RetrainInput

	mu      sync.Mutex
	unknown map[string]bool // types logged once already
}

// NewTemporalDispatcher returns a dispatcher whose counter is registered on
// reg (nil: counted but not registered).
func NewTemporalDispatcher(o modelfleet.Orchestrator, logger *slog.Logger, reg prometheus.Registerer) *TemporalDispatcher {
	return &TemporalDispatcher{Orchestrator: o, Logger: logger, Counter: newDispatchCounter(reg)}
}

// Dispatch implements Dispatcher. It returns nil for every event it does
// not act on: an error would only make Event Grid retry it for 24 hours.
// Data that an acted-on type needs but cannot be read is EINVALID (400).
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
	case modelfleet.EventDatasetDriftDetected:
		t, err := d.driftTrigger(ev)
		if err != nil {
			d.count(ev, "invalid")
			return err
		}
		return d.triggerRetrain(ctx, log, ev, t)
	case modelfleet.EventRunCompleted, modelfleet.EventRunStatusChanged:
		return d.run(ctx, log, ev)
	default:
		d.logUnknown(log, ev.Type)
		d.count(ev, "ignored")
		return nil
	}
}

// run routes a run event: a retraining job's status to its workflow, a
// monitor's threshold breach to the drift path, anything else nowhere.
func (d *TemporalDispatcher) run(ctx context.Context, log *slog.Logger, ev Event) error {
	var run Run
	var err error
	if ev.Type == modelfleet.EventRunCompleted {
		run, err = DecodeRunCompleted(ev)
	} else {
		run, err = DecodeRunStatusChanged(ev)
	}
	if err != nil {
		d.count(ev, "invalid")
		return err
	}
	log = log.With("run_id", clip(run.RunID))
	if model, ok := run.Tags[RetrainRunTag]; ok {
		s, err := retrainRunStatus(ev, run, model)
		if err != nil {
			d.count(ev, "invalid")
			return err
		}
		return d.signalRunStatus(ctx, log, ev, s)
	}
	if ev.Type == modelfleet.EventRunStatusChanged && run.Tags[MonitorBreachTag] != "" {
		t, err := d.breachTrigger(ev, run)
		if err != nil {
			d.count(ev, "invalid")
			return err
		}
		return d.triggerRetrain(ctx, log, ev, t)
	}
	log.Debug("azure ml run not submitted by modelfleet; acknowledged")
	d.count(ev, "not_ours")
	return nil
}

// triggerRetrain signal-with-starts the model's retraining workflow
// (Orchestrator.TriggerRetrain) for an event.
func (d *TemporalDispatcher) triggerRetrain(ctx context.Context, log *slog.Logger, ev Event, t modelfleet.RetrainTrigger) error {
	log = log.With("workflow_id", modelfleet.RetrainWorkflowID(t.Model), "reason", t.Reason)
	run, err := d.Orchestrator.TriggerRetrain(ctx, d.Retrain, t)
	if err != nil {
		return d.failed(ev, err)
	}
	log.Info("retraining triggered", "run_id", run.RunID, "monitor", clip(t.Monitor))
	d.count(ev, "triggered")
	return nil
}

// signalRunStatus tells a retraining workflow about its job. With no such
// workflow running there is nobody to tell: acknowledged, not retried.
func (d *TemporalDispatcher) signalRunStatus(ctx context.Context, log *slog.Logger, ev Event, s modelfleet.RunStatus) error {
	log = log.With("workflow_id", modelfleet.RetrainWorkflowID(s.Model), "status", clip(s.Status))
	err := d.Orchestrator.SignalRunStatus(ctx, s)
	switch {
	case modelfleet.ErrorCode(err) == modelfleet.ENOTFOUND:
		log.Info("retraining run status for no running workflow; acknowledged")
		d.count(ev, "no_workflow")
		return nil
	case err != nil:
		return d.failed(ev, err)
	}
	log.Info("retraining run status signaled")
	d.count(ev, "signaled")
	return nil
}

// maxUnknownTypes bounds the memory of types logged once; a sender cannot
// grow it, nor the log, without bound.
const maxUnknownTypes = 256

// logUnknown logs an unknown event type the first time it is seen.
func (d *TemporalDispatcher) logUnknown(log *slog.Logger, typ string) {
	d.mu.Lock()
	if d.unknown == nil {
		d.unknown = map[string]bool{}
	}
	first := !d.unknown[typ] && len(d.unknown) < maxUnknownTypes
	if first {
		d.unknown[typ] = true
	}
	last := first && len(d.unknown) == maxUnknownTypes
	d.mu.Unlock()
	if first {
		log.Info("unknown event type acknowledged and ignored; further events of this type are only counted")
	}
	if last {
		log.Warn("too many unknown event types: no more are logged", "limit", maxUnknownTypes)
	}
}

// startRelease starts the release workflow (Orchestrator.StartRelease). A
// redelivered event is harmless: a running release is reused, and one that
// already ran is not run again (ECONFLICT), which is acknowledged.
func (d *TemporalDispatcher) startRelease(ctx context.Context, log *slog.Logger, ev Event) error {
	reg, err := DecodeModelRegistered(ev)
	if err != nil {
		d.count(ev, "invalid")
		return err
	}
	in := modelfleet.ReleaseInput{Model: reg.Model, Tags: reg.Tags, Properties: reg.Properties, EventID: ev.ID}
	log = log.With("workflow_id", modelfleet.ReleaseWorkflowID(reg.Model))
	run, err := d.Orchestrator.StartRelease(ctx, in)
	switch {
	case modelfleet.ErrorCode(err) == modelfleet.ECONFLICT:
		log.Info("release already ran; duplicate event acknowledged")
		d.count(ev, "already_ran")
		return nil
	case err != nil:
		return d.failed(ev, err)
	}
	log.Info("release started", "run_id", run.RunID)
	d.count(ev, "started")
	return nil
}

// failed counts an event the orchestrator refused or failed and returns
// the error: EINVALID (the event can never succeed) is "invalid", anything
// else "error".
func (d *TemporalDispatcher) failed(ev Event, err error) error {
	if modelfleet.ErrorCode(err) == modelfleet.EINVALID {
		d.count(ev, "invalid")
	} else {
		d.count(ev, "error")
	}
	return err
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
