package events

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/orchestrator/orchestratortest"
)

// only returns the one call the fake received.
func only(t *testing.T, f *orchestratortest.Fake) orchestratortest.Call {
	t.Helper()
	calls := f.Calls()
	if len(calls) != 1 {
		t.Fatalf("calls = %+v, want exactly one", calls)
	}
	return calls[0]
}

// The event → effect table of docs/events.md, on the testdata corpus.
func TestDispatchEffects(t *testing.T) {
	tests := []struct {
		file, contentType  string
		method, id, signal string // the orchestrator's call; "" for none
		result             string // the counter's result label
	}{
		{"eventgrid_model_registered.json", ctJSON, orchestratortest.StartRelease, "release/sklearn_regression_model/3", "", "started"},
		{"cloudevents_model_registered_sample.json", ctCloudBatch, orchestratortest.StartRelease, "release/sklearn_regression_model/20", "", "started"},
		{"eventgrid_dataset_drift_detected_model.json", ctJSON, orchestratortest.TriggerRetrain, "retrain/bearing-failure", "trigger", "triggered"},
		{"eventgrid_run_status_changed_monitor_breach.json", ctJSON, orchestratortest.TriggerRetrain, "retrain/bearing-failure", "trigger", "triggered"},
		{"cloudevents_run_status_changed_monitor_breach.json", ctCloudBatch, orchestratortest.TriggerRetrain, "retrain/bearing-failure", "trigger", "triggered"},
		{"eventgrid_run_completed_retrain.json", ctJSON, orchestratortest.SignalRunStatus, "retrain/bearing-failure", "run-status", "signaled"},
		{"cloudevents_run_status_changed_retrain.json", ctCloudBatch, orchestratortest.SignalRunStatus, "retrain/bearing-failure", "run-status", "signaled"},
		{"eventgrid_model_deployed.json", ctJSON, "", "", "", "audited"},
		{"cloudevents_model_deployed_sample.json", ctCloudBatch, "", "", "", "audited"},
		{"eventgrid_run_completed.json", ctJSON, "", "", "", "not_ours"},
		{"cloudevents_run_completed_sample.json", ctCloudBatch, "", "", "", "not_ours"},
		{"eventgrid_run_status_changed.json", ctJSON, "", "", "", "not_ours"},
		{"cloudevents_run_status_changed_sample.json", ctCloudBatch, "", "", "", "not_ours"},
		// Microsoft's samples name monitors that follow no convention.
		{"eventgrid_dataset_drift_detected.json", ctJSON, "", "", "", "invalid"},
		{"cloudevents_dataset_drift_detected_sample.json", ctCloudBatch, "", "", "", "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f := &orchestratortest.Fake{}
			f.SetRunning(modelfleet.RetrainWorkflowID("bearing-failure")) // a run status has a workflow to go to
			reg := prometheus.NewRegistry()
			d := NewTemporalDispatcher(f, quietLogger(), reg)
			ev := first(t, tt.file, tt.contentType)
			err := d.Dispatch(context.Background(), ev)
			if tt.result == "invalid" {
				if got := modelfleet.ErrorCode(err); got != modelfleet.EINVALID {
					t.Fatalf("Dispatch = %v, want an invalid error", err)
				}
			} else if err != nil {
				t.Fatalf("Dispatch: %v", err)
			}
			if got := counters(t, reg, "modelfleet_events_dispatched_total")[ev.Type+"/"+tt.result]; got != 1 {
				t.Errorf("dispatched_total{%s/%s} = %v, want 1", ev.Type, tt.result, got)
			}
			if tt.method == "" {
				if calls := f.Calls(); len(calls) != 0 {
					t.Errorf("calls = %+v, want none", calls)
				}
				return
			}
			c := only(t, f)
			if c.Method != tt.method || c.WorkflowID != tt.id || c.Signal != tt.signal {
				t.Errorf("call = %s %s %s, want %s %s %s", c.Method, c.WorkflowID, c.Signal, tt.method, tt.id, tt.signal)
			}
		})
	}
}

// Drift triggers the model's retraining with the dispatcher's Retrain
// input and the event's trigger.
func TestDriftTriggersRetraining(t *testing.T) {
	f := &orchestratortest.Fake{}
	d := &TemporalDispatcher{Orchestrator: f, Logger: quietLogger(), Retrain: modelfleet.RetrainInput{Debounce: time.Minute}}
	if err := d.Dispatch(context.Background(), first(t, "eventgrid_dataset_drift_detected_model.json", ctJSON)); err != nil {
		t.Fatal(err)
	}
	c := only(t, f)
	if c.Method != orchestratortest.TriggerRetrain || c.WorkflowID != modelfleet.RetrainWorkflowID("bearing-failure") {
		t.Errorf("call = %s %s", c.Method, c.WorkflowID)
	}
	if in := c.Input.(modelfleet.RetrainInput); in.Debounce != time.Minute {
		t.Errorf("input = %+v", in)
	}
	tr := c.Payload.(modelfleet.RetrainTrigger)
	want := modelfleet.RetrainTrigger{
		Reason: modelfleet.ReasonDatasetDrift, EventID: "0c5e7a88-1b2d-4e3f-8a4b-5c6d7e8f9a01", Model: "bearing-failure",
		DriftCoefficient: 0.41, Monitor: "bearing-failure--weekly", RunID: "5b1f0c2e-9a3d-4e7f-8b6a-2c4d6e8fa0b1_1772442000000",
		Source: "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mlops-rg/providers/Microsoft.MachineLearningServices/workspaces/factory-ws",
		Time:   time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC),
	}
	if !tr.Time.Equal(want.Time) {
		t.Errorf("trigger time = %v, want %v", tr.Time, want.Time)
	}
	tr.Time = want.Time
	if tr != want {
		t.Errorf("trigger = %+v\nwant      %+v", tr, want)
	}
}

func TestDriftModelResolution(t *testing.T) {
	drift := func(monitor string) Event {
		return Event{ID: "e", Type: modelfleet.EventDatasetDriftDetected, Schema: SchemaEventGrid,
			Data: []byte(`{"dataDriftId":"d","dataDriftName":"` + monitor + `","driftCoefficient":0.5}`)}
	}
	breach := func(tags string) Event {
		return Event{ID: "e", Type: modelfleet.EventRunStatusChanged, Schema: SchemaEventGrid,
			Data: []byte(`{"runId":"r","runStatus":"Failed","runTags":` + tags + `}`)}
	}
	tests := []struct {
		name  string
		ev    Event
		model string // "" means EINVALID
	}{
		{"convention", drift("churn.v2--nightly"), "churn.v2"},
		{"first separator", drift("a--b--c"), "a"},
		{"mapped", drift("myDriftMonitor"), "sklearn_regression_model"},
		{"no separator", drift("driftMonitor3"), ""},
		{"empty model", drift("--x"), ""},
		{"invalid model", drift("..x--y"), ""},
		{"no name", drift(""), ""},
		{"signal name", breach(`{"azureml_modelmonitor_threshold_breached":"The signal 'churn--prod_drift' has failed due to one or more features violating metric thresholds."}`), "churn"},
		{"model tag wins", breach(`{"azureml_modelmonitor_threshold_breached":"The signal 'x--y' has failed","modelfleet.model":"churn"}`), "churn"},
		{"invalid model tag", breach(`{"azureml_modelmonitor_threshold_breached":"breached","modelfleet.model":"../x"}`), ""},
		{"unparsable message", breach(`{"azureml_modelmonitor_threshold_breached":"something else"}`), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &orchestratortest.Fake{}
			d := &TemporalDispatcher{Orchestrator: f, Logger: quietLogger(), DriftMonitors: map[string]string{"myDriftMonitor": "sklearn_regression_model"}}
			err := d.Dispatch(context.Background(), tt.ev)
			if tt.model == "" {
				if modelfleet.ErrorCode(err) != modelfleet.EINVALID || len(f.Calls()) != 0 {
					t.Fatalf("Dispatch = %v with %d calls, want invalid and none", err, len(f.Calls()))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := only(t, f).Payload.(modelfleet.RetrainTrigger).Model, tt.model; got != want {
				t.Errorf("model = %q, want %q", got, want)
			}
		})
	}
}

func TestRunStatusSignal(t *testing.T) {
	f := &orchestratortest.Fake{}
	f.SetRunning(modelfleet.RetrainWorkflowID("bearing-failure"))
	d := &TemporalDispatcher{Orchestrator: f, Logger: quietLogger()}
	if err := d.Dispatch(context.Background(), first(t, "cloudevents_run_status_changed_retrain.json", ctCloudBatch)); err != nil {
		t.Fatal(err)
	}
	c := only(t, f)
	if c.Method != orchestratortest.SignalRunStatus {
		t.Errorf("call = %s", c.Method)
	}
	got := c.Payload.(modelfleet.RunStatus)
	want := modelfleet.RunStatus{Model: "bearing-failure", RunID: "retrain-bearing-failure-0001", Status: "Failed",
		EventID: "3f8badbb-4e5a-4b6c-9d7e-8f9a0b1c2d34", Time: got.Time}
	if got != want || got.Time.IsZero() {
		t.Errorf("run status = %+v, want %+v", got, want)
	}
}

func TestRunStatusWithoutWorkflowIsAcknowledged(t *testing.T) {
	f := &orchestratortest.Fake{} // no retraining workflow runs
	reg := prometheus.NewRegistry()
	d := NewTemporalDispatcher(f, quietLogger(), reg)
	ev := first(t, "eventgrid_run_completed_retrain.json", ctJSON)
	if err := d.Dispatch(context.Background(), ev); err != nil {
		t.Fatalf("Dispatch = %v, want nil (nothing to signal)", err)
	}
	if got := counters(t, reg, "modelfleet_events_dispatched_total")[ev.Type+"/no_workflow"]; got != 1 {
		t.Errorf("no_workflow = %v, want 1", got)
	}
	if c := only(t, f); c.Method != orchestratortest.SignalRunStatus {
		t.Errorf("call = %s, want SignalRunStatus", c.Method)
	}
}

// Temporal down: the webhook answers 503 for every path that calls it.
func TestTemporalDownIs503(t *testing.T) {
	for _, file := range []string{"eventgrid_dataset_drift_detected_model.json", "eventgrid_run_status_changed_monitor_breach.json", "eventgrid_run_completed_retrain.json"} {
		t.Run(file, func(t *testing.T) {
			f := &orchestratortest.Fake{Err: errors.New("down")}
			f.SetRunning(modelfleet.RetrainWorkflowID("bearing-failure"))
			h := NewHandler(&TemporalDispatcher{Orchestrator: f, Logger: quietLogger()}, HandlerOptions{Logger: quietLogger()})
			if w := post(h, ctJSON, load(t, file)); w.Code != http.StatusServiceUnavailable {
				t.Errorf("status = %d, want 503 (%s)", w.Code, w.Body)
			}
		})
	}
}

func TestInvalidRetrainTagIs400(t *testing.T) {
	f := &orchestratortest.Fake{}
	h := NewHandler(&TemporalDispatcher{Orchestrator: f, Logger: quietLogger()}, HandlerOptions{Logger: quietLogger()})
	body := `[{"id":"e1","eventType":"Microsoft.MachineLearningServices.RunCompleted","subject":"s","eventTime":"2026-01-01T00:00:00Z","data":{"runId":"r","runTags":{"modelfleet.retrain":"../x"}}}]`
	w := post(h, ctJSON, []byte(body))
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "modelfleet.retrain") {
		t.Errorf("status = %d (%s), want 400 naming the tag", w.Code, w.Body)
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("calls = %+v, want none", calls)
	}
}

func TestUnknownTypesLoggedOncePerType(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	d := &TemporalDispatcher{Orchestrator: &orchestratortest.Fake{}, Logger: log}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			typ := []string{"Microsoft.Storage.BlobCreated", "Contoso.Thing"}[i%2]
			if err := d.Dispatch(context.Background(), Event{ID: "x", Type: typ}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := strings.Count(buf.String(), "unknown event type"); got != 2 {
		t.Errorf("logged %d times, want once per type:\n%s", got, buf.String())
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
