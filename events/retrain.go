package events

import (
	"fmt"
	"strings"

	"github.com/modelfleet/modelfleet"
)

// Run tags the gateway reads.
const (
	// MonitorBreachTag is the run tag Azure ML model monitoring sets on a
	// monitor run whose signal breached its thresholds; its value reads
	// "The signal '<name>' has failed due to one or more features violating
	// metric thresholds. ...". Azure's docs subscribe to it with an advanced
	// filter (data.RunTags.azureml_modelmonitor_threshold_breached, String
	// contains).
	MonitorBreachTag = "azureml_modelmonitor_threshold_breached"
	// ModelTag, on a monitor run, names the model it watches outright.
	ModelTag = "modelfleet.model"
	// RetrainRunTag marks a retraining job the product submitted; its value
	// is the model name.
	RetrainRunTag = modelfleet.RetrainRunTag
)

// MonitorSeparator splits a drift monitor's (or monitoring signal's) name
// into the model it watches and a free description: a monitor named
// "bearing-failure--weekly" watches model "bearing-failure". Azure's
// DatasetDriftDetected data names no model, so the name is what carries it.
const MonitorSeparator = "--"

// driftTrigger reads a DatasetDriftDetected event: the model comes from the
// data drift monitor's name (see modelForMonitor).
func (d *TemporalDispatcher) driftTrigger(ev Event) (modelfleet.RetrainTrigger, error) {
	dr, err := DecodeDatasetDriftDetected(ev)
	if err != nil {
		return modelfleet.RetrainTrigger{}, err
	}
	model, err := d.modelForMonitor("data drift monitor", dr.DataDriftName)
	if err != nil {
		return modelfleet.RetrainTrigger{}, err
	}
	return modelfleet.RetrainTrigger{
		Reason: modelfleet.ReasonDatasetDrift, Source: ev.Source, EventID: ev.ID, Model: model,
		DriftCoefficient: dr.DriftCoefficient, Monitor: dr.DataDriftName, RunID: dr.RunID, Time: ev.Time,
	}, nil
}

// breachTrigger reads a model monitoring run that breached its thresholds:
// the model is the run's ModelTag if set, else it comes from the signal
// name in the breach message (Azure names signals <monitor>_<signal>, so a
// monitor named by the MonitorSeparator convention carries the model).
func (d *TemporalDispatcher) breachTrigger(ev Event, run Run) (modelfleet.RetrainTrigger, error) {
	t := modelfleet.RetrainTrigger{
		Reason: modelfleet.ReasonMonitorThreshold, Source: ev.Source, EventID: ev.ID,
		RunID: run.RunID, Time: ev.Time, Monitor: signalName(run.Tags[MonitorBreachTag]),
	}
	if m := run.Tags[ModelTag]; m != "" {
		if err := modelfleet.ValidateName("model name", m); err != nil {
			return t, dataError("RunStatusChanged", fmt.Errorf("run tag %q: %s", ModelTag, modelfleet.ErrorMessage(err)))
		}
		t.Model = m
		return t, nil
	}
	m, err := d.modelForMonitor("monitoring signal", t.Monitor)
	t.Model = m
	return t, err
}

// modelForMonitor maps a monitor or signal name to a model: an entry of
// DriftMonitors if there is one, else the part of the name before
// MonitorSeparator. A name that yields no valid model is EINVALID: the
// event can never be acted on (400, dead-lettered).
func (d *TemporalDispatcher) modelForMonitor(what, name string) (string, error) {
	if m, ok := d.DriftMonitors[name]; ok {
		return m, nil
	}
	model, _, found := strings.Cut(name, MonitorSeparator)
	if !found {
		return "", modelfleet.Errorf(modelfleet.EINVALID,
			"no model for %s %q: name it <model>%s<description> or map it in the gateway's drift monitors", what, clip(name), MonitorSeparator)
	}
	if err := modelfleet.ValidateName("model name", model); err != nil {
		return "", modelfleet.Errorf(modelfleet.EINVALID, "no model for %s %q: %s", what, clip(name), modelfleet.ErrorMessage(err))
	}
	return model, nil
}

// signalName extracts <name> from "The signal '<name>' has failed ...", the
// message Azure ML model monitoring puts in MonitorBreachTag; "" if the
// message has another shape.
func signalName(msg string) string {
	const prefix = "The signal '"
	_, rest, ok := strings.Cut(msg, prefix)
	if !ok {
		return ""
	}
	name, _, ok := strings.Cut(rest, "'")
	if !ok {
		return ""
	}
	return name
}

// retrainRunStatus reads a RunCompleted or RunStatusChanged event of a
// retraining job (RetrainRunTag set): the status for its workflow.
func retrainRunStatus(ev Event, run Run, model string) (modelfleet.RunStatus, error) {
	if err := modelfleet.ValidateName("model name", model); err != nil {
		return modelfleet.RunStatus{}, dataError(strings.TrimPrefix(ev.Type, "Microsoft.MachineLearningServices."),
			fmt.Errorf("run tag %q: %s", RetrainRunTag, modelfleet.ErrorMessage(err)))
	}
	status := run.Status
	if ev.Type == modelfleet.EventRunCompleted {
		status = "Completed"
	}
	return modelfleet.RunStatus{Model: model, RunID: run.RunID, Status: status, EventID: ev.ID, Time: ev.Time}, nil
}
