package events

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/modelfleet/modelfleet"
)

// fakeTemporal records the calls the dispatcher makes; err answers every
// call, signalErr only SignalWorkflow.
type fakeTemporal struct {
	client.Client // nil: any other call panics
	mu            sync.Mutex
	calls         []call
	err           error
	signalErr     error
}

type call struct {
	op       string // start, signal-with-start, signal
	id       string
	signal   string
	arg      any // the signal's
	opts     client.StartWorkflowOptions
	workflow any
	input    any
}

type fakeRun struct{ client.WorkflowRun }

func (fakeRun) GetRunID() string { return "run-1" }

func (f *fakeTemporal) record(c call) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

func (f *fakeTemporal) ExecuteWorkflow(_ context.Context, opts client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	f.record(call{op: "start", id: opts.ID, opts: opts, workflow: wf, input: args[0]})
	if f.err != nil {
		return nil, f.err
	}
	return fakeRun{}, nil
}

func (f *fakeTemporal) SignalWithStartWorkflow(_ context.Context, id, signal string, arg any, opts client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	f.record(call{op: "signal-with-start", id: id, signal: signal, arg: arg, opts: opts, workflow: wf, input: args[0]})
	if f.err != nil {
		return nil, f.err
	}
	return fakeRun{}, nil
}

func (f *fakeTemporal) SignalWorkflow(_ context.Context, id, runID, signal string, arg any) error {
	f.record(call{op: "signal", id: id, signal: signal, arg: arg})
	if f.err != nil {
		return f.err
	}
	return f.signalErr
}

func (f *fakeTemporal) only(t *testing.T) call {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) != 1 {
		t.Fatalf("calls = %+v, want exactly one", f.calls)
	}
	return f.calls[0]
}

// The event → effect table of docs/events.md, on the testdata corpus.
func TestDispatchEffects(t *testing.T) {
	tests := []struct {
		file, contentType string
		op, id, signal    string // the Temporal call; "" for none
		result            string // the counter's result label
	}{
		{"eventgrid_model_registered.json", ctJSON, "start", "release/sklearn_regression_model/3", "", "started"},
		{"cloudevents_model_registered_sample.json", ctCloudBatch, "start", "release/sklearn_regression_model/20", "", "started"},
		{"eventgrid_dataset_drift_detected_model.json", ctJSON, "signal-with-start", "retrain/bearing-failure", "trigger", "triggered"},
		{"eventgrid_run_status_changed_monitor_breach.json", ctJSON, "signal-with-start", "retrain/bearing-failure", "trigger", "triggered"},
		{"cloudevents_run_status_changed_monitor_breach.json", ctCloudBatch, "signal-with-start", "retrain/bearing-failure", "trigger", "triggered"},
		{"eventgrid_run_completed_retrain.json", ctJSON, "signal", "retrain/bearing-failure", "run-status", "signaled"},
		{"cloudevents_run_status_changed_retrain.json", ctCloudBatch, "signal", "retrain/bearing-failure", "run-status", "signaled"},
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
			f := &fakeTemporal{}
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
			if tt.op == "" {
				if len(f.calls) != 0 {
					t.Errorf("calls = %+v, want none", f.calls)
				}
				return
			}
			c := f.only(t)
			if c.op != tt.op || c.id != tt.id || c.signal != tt.signal {
				t.Errorf("call = %s %s %s, want %s %s %s", c.op, c.id, c.signal, tt.op, tt.id, tt.signal)
			}
		})
	}
}

func TestDriftSignalWithStart(t *testing.T) {
	f := &fakeTemporal{}
	d := &TemporalDispatcher{Client: f, Logger: quietLogger(), Retrain: modelfleet.RetrainInput{Debounce: time.Minute}}
	if err := d.Dispatch(context.Background(), first(t, "eventgrid_dataset_drift_detected_model.json", ctJSON)); err != nil {
		t.Fatal(err)
	}
	c := f.only(t)
	if got, want := c.opts.TaskQueue, modelfleet.CloudTaskQueue; got != want {
		t.Errorf("task queue = %q, want %q", got, want)
	}
	if c.opts.ID != c.id || c.id != modelfleet.RetrainWorkflowID("bearing-failure") {
		t.Errorf("ids = %q / %q", c.id, c.opts.ID)
	}
	if got, want := c.opts.WorkflowIDReusePolicy, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE; got != want {
		t.Errorf("reuse policy = %v, want %v", got, want)
	}
	if got, want := c.opts.WorkflowIDConflictPolicy, enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING; got != want {
		t.Errorf("conflict policy = %v, want %v", got, want)
	}
	if m, _ := c.opts.TypedSearchAttributes.GetKeyword(temporal.NewSearchAttributeKeyKeyword("ModelfleetModel")); m != "bearing-failure" {
		t.Errorf("model attribute = %q", m)
	}
	if s, _ := c.opts.TypedSearchAttributes.GetKeyword(temporal.NewSearchAttributeKeyKeyword("ModelfleetStage")); s != modelfleet.RetrainCollecting {
		t.Errorf("stage attribute = %q", s)
	}
	if c.workflow != modelfleet.RetrainWorkflowName {
		t.Errorf("workflow = %v", c.workflow)
	}
	if in := c.input.(modelfleet.RetrainInput); in.Model != "bearing-failure" || in.Debounce != time.Minute {
		t.Errorf("input = %+v", in)
	}
	tr := c.arg.(modelfleet.RetrainTrigger)
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
			f := &fakeTemporal{}
			d := &TemporalDispatcher{Client: f, Logger: quietLogger(), DriftMonitors: map[string]string{"myDriftMonitor": "sklearn_regression_model"}}
			err := d.Dispatch(context.Background(), tt.ev)
			if tt.model == "" {
				if modelfleet.ErrorCode(err) != modelfleet.EINVALID || len(f.calls) != 0 {
					t.Fatalf("Dispatch = %v with %d calls, want invalid and none", err, len(f.calls))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := f.only(t).arg.(modelfleet.RetrainTrigger).Model, tt.model; got != want {
				t.Errorf("model = %q, want %q", got, want)
			}
		})
	}
}

func TestRunStatusSignal(t *testing.T) {
	f := &fakeTemporal{}
	d := &TemporalDispatcher{Client: f, Logger: quietLogger()}
	if err := d.Dispatch(context.Background(), first(t, "cloudevents_run_status_changed_retrain.json", ctCloudBatch)); err != nil {
		t.Fatal(err)
	}
	got := f.only(t).arg.(modelfleet.RunStatus)
	want := modelfleet.RunStatus{Model: "bearing-failure", RunID: "retrain-bearing-failure-0001", Status: "Failed",
		EventID: "3f8badbb-4e5a-4b6c-9d7e-8f9a0b1c2d34", Time: got.Time}
	if got != want || got.Time.IsZero() {
		t.Errorf("run status = %+v, want %+v", got, want)
	}
}

func TestRunStatusWithoutWorkflowIsAcknowledged(t *testing.T) {
	f := &fakeTemporal{signalErr: serviceerror.NewNotFound("workflow execution not found")}
	reg := prometheus.NewRegistry()
	d := NewTemporalDispatcher(f, quietLogger(), reg)
	ev := first(t, "eventgrid_run_completed_retrain.json", ctJSON)
	if err := d.Dispatch(context.Background(), ev); err != nil {
		t.Fatalf("Dispatch = %v, want nil (nothing to signal)", err)
	}
	if got := counters(t, reg, "modelfleet_events_dispatched_total")[ev.Type+"/no_workflow"]; got != 1 {
		t.Errorf("no_workflow = %v, want 1", got)
	}
}

// Temporal down: the webhook answers 503 for every path that calls it.
func TestTemporalDownIs503(t *testing.T) {
	for _, file := range []string{"eventgrid_dataset_drift_detected_model.json", "eventgrid_run_status_changed_monitor_breach.json", "eventgrid_run_completed_retrain.json"} {
		t.Run(file, func(t *testing.T) {
			f := &fakeTemporal{err: serviceerror.NewUnavailable("down")}
			h := NewHandler(&TemporalDispatcher{Client: f, Logger: quietLogger()}, HandlerOptions{Logger: quietLogger()})
			if w := post(h, ctJSON, load(t, file)); w.Code != http.StatusServiceUnavailable {
				t.Errorf("status = %d, want 503 (%s)", w.Code, w.Body)
			}
		})
	}
}

func TestInvalidRetrainTagIs400(t *testing.T) {
	f := &fakeTemporal{}
	h := NewHandler(&TemporalDispatcher{Client: f, Logger: quietLogger()}, HandlerOptions{Logger: quietLogger()})
	body := `[{"id":"e1","eventType":"Microsoft.MachineLearningServices.RunCompleted","subject":"s","eventTime":"2026-01-01T00:00:00Z","data":{"runId":"r","runTags":{"modelfleet.retrain":"../x"}}}]`
	w := post(h, ctJSON, []byte(body))
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "modelfleet.retrain") {
		t.Errorf("status = %d (%s), want 400 naming the tag", w.Code, w.Body)
	}
	if len(f.calls) != 0 {
		t.Errorf("calls = %+v, want none", f.calls)
	}
}

func TestUnknownTypesLoggedOncePerType(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	d := &TemporalDispatcher{Client: &fakeTemporal{}, Logger: log}
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
