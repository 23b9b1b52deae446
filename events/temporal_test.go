package events

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/orchestrator/orchestratortest"
)

// The options Temporal gets (ID-reuse policies, search attributes) are
// orchestrator's tests; these check what the dispatcher asks of the
// orchestrator and how it answers Event Grid.

func TestTemporalDispatcherStartsRelease(t *testing.T) {
	f := &orchestratortest.Fake{}
	reg := prometheus.NewRegistry()
	d := NewTemporalDispatcher(f, quietLogger(), reg)

	ev := first(t, "eventgrid_model_registered_sample.json", ctJSON)
	if err := d.Dispatch(context.Background(), ev); err != nil {
		t.Fatalf("Dispatch: %v", err)
	}
	c := only(t, f)
	ref := modelfleet.ModelRef{Name: "sklearn_regression_model", Version: "20"}
	if c.Method != orchestratortest.StartRelease || c.WorkflowID != "release/sklearn_regression_model/20" {
		t.Errorf("call = %s %s, want StartRelease release/sklearn_regression_model/20", c.Method, c.WorkflowID)
	}
	in := c.Input.(modelfleet.ReleaseInput)
	if got, want := in.Model, ref; got != want {
		t.Errorf("input model = %v, want %v", got, want)
	}
	if got, want := in.EventID, "831e1650-001e-001b-66ab-eeb76e069631"; got != want {
		t.Errorf("input event id = %q, want %q", got, want)
	}
	if got, want := in.Tags["auc"], "0.91"; got != want {
		t.Errorf("input tag auc = %q, want %q", got, want)
	}
	if got, want := in.Properties, map[string]string{"type": "test"}; !maps.Equal(got, want) {
		t.Errorf("input properties = %v, want %v", got, want)
	}
	if in.Resume != nil {
		t.Errorf("input resume = %s, want none", in.Resume)
	}
	if got, want := counters(t, reg, "modelfleet_events_dispatched_total")[modelfleet.EventModelRegistered+"/started"], 1.0; got != want {
		t.Errorf("dispatched_total{started} = %v, want %v", got, want)
	}
}

// A redelivered ModelRegistered is success whether its release still runs
// (reused) or already ran (ECONFLICT, counted as such).
func TestTemporalDispatcherRedeliveryIsSuccess(t *testing.T) {
	ev := first(t, "eventgrid_model_registered.json", ctJSON)
	id := "release/sklearn_regression_model/3"
	for _, tt := range []struct {
		name   string
		before func(*orchestratortest.Fake)
		result string
	}{
		{"still running", func(f *orchestratortest.Fake) { f.SetRunning(id) }, "started"},
		{"already ran", func(f *orchestratortest.Fake) { f.Close(id) }, "already_ran"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &orchestratortest.Fake{}
			tt.before(f)
			reg := prometheus.NewRegistry()
			d := NewTemporalDispatcher(f, quietLogger(), reg)
			if err := d.Dispatch(context.Background(), ev); err != nil {
				t.Fatalf("Dispatch = %v, want nil for a redelivered event", err)
			}
			if c := only(t, f); c.Method != orchestratortest.StartRelease || c.WorkflowID != id {
				t.Errorf("call = %s %s", c.Method, c.WorkflowID)
			}
			if got := counters(t, reg, "modelfleet_events_dispatched_total")[ev.Type+"/"+tt.result]; got != 1 {
				t.Errorf("dispatched_total{%s} = %v, want 1", tt.result, got)
			}
		})
	}
}

func TestTemporalDispatcherTransientError(t *testing.T) {
	unavailable := errors.New("frontend down")
	f := &orchestratortest.Fake{Err: unavailable}
	reg := prometheus.NewRegistry()
	d := NewTemporalDispatcher(f, quietLogger(), reg)
	ev := first(t, "cloudevent_model_registered.json", ctCloud)
	err := d.Dispatch(context.Background(), ev)
	if !errors.Is(err, unavailable) {
		t.Fatalf("Dispatch = %v, want %v", err, unavailable)
	}
	if got, want := modelfleet.ErrorCode(err), modelfleet.EINTERNAL; got != want {
		t.Errorf("code = %q, want %q (transient: the handler answers 503)", got, want)
	}
	if got := counters(t, reg, "modelfleet_events_dispatched_total")[ev.Type+"/error"]; got != 1 {
		t.Errorf("dispatched_total{error} = %v, want 1", got)
	}
}

func TestTemporalDispatcherInvalidModelRegistered(t *testing.T) {
	f := &orchestratortest.Fake{}
	d := &TemporalDispatcher{Orchestrator: f, Logger: quietLogger()}
	err := d.Dispatch(context.Background(), registered(`{"modelVersion":"1"}`))
	if got, want := modelfleet.ErrorCode(err), modelfleet.EINVALID; got != want {
		t.Fatalf("code = %q, want %q (%v)", got, want, err)
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("calls = %+v, want none", calls)
	}
}

func TestTemporalDispatcherAcknowledgesOtherTypes(t *testing.T) {
	files := []string{
		"eventgrid_model_deployed.json",
		"eventgrid_run_completed.json",
		"eventgrid_run_status_changed.json",
	}
	var evs []Event
	for _, f := range files {
		evs = append(evs, first(t, f, ctJSON))
	}
	batch, err := Decode(load(t, "eventgrid_batch.json"), ctJSON)
	if err != nil {
		t.Fatal(err)
	}
	evs = append(evs, batch[2]) // Microsoft.Storage.BlobCreated
	// Malformed data of a type we only log is acknowledged too.
	evs = append(evs, Event{ID: "x", Type: modelfleet.EventModelDeployed, Data: []byte(`[]`)})

	f := &orchestratortest.Fake{} // no call must reach the orchestrator
	reg := prometheus.NewRegistry()
	d := NewTemporalDispatcher(f, quietLogger(), reg)
	for _, ev := range evs {
		if err := d.Dispatch(context.Background(), ev); err != nil {
			t.Errorf("Dispatch(%s) = %v, want nil", ev.Type, err)
		}
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("calls = %+v, want none", calls)
	}
	counts := counters(t, reg, "modelfleet_events_dispatched_total")
	for labels, want := range map[string]float64{
		modelfleet.EventModelDeployed + "/audited":     2,
		modelfleet.EventRunCompleted + "/not_ours":     1,
		modelfleet.EventRunStatusChanged + "/not_ours": 1,
		"other/ignored": 1,
	} {
		if got := counts[labels]; got != want {
			t.Errorf("dispatched_total{%s} = %v, want %v (all: %v)", labels, got, want, counts)
		}
	}
}

// The handler and the dispatcher together: Event Grid's view.
func TestHandlerWithTemporalDispatcher(t *testing.T) {
	const id = "release/sklearn_regression_model/3"
	tests := []struct {
		name   string
		file   string
		fake   func() *orchestratortest.Fake
		calls  int
		status int
	}{
		{"started", "eventgrid_model_registered.json", func() *orchestratortest.Fake { return &orchestratortest.Fake{} }, 1, 200},
		{"redelivered after the release closed", "eventgrid_model_registered.json",
			func() *orchestratortest.Fake { f := &orchestratortest.Fake{}; f.Close(id); return f }, 1, 200},
		{"temporal unavailable", "eventgrid_model_registered.json",
			func() *orchestratortest.Fake { return &orchestratortest.Fake{Err: errors.New("down")} }, 1, 503},
		{"runs not submitted by modelfleet", "eventgrid_run_status_changed.json", func() *orchestratortest.Fake { return &orchestratortest.Fake{} }, 0, 200},
		{"drift of a monitor naming no model", "eventgrid_dataset_drift_detected.json", func() *orchestratortest.Fake { return &orchestratortest.Fake{} }, 0, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.fake()
			h := NewHandler(&TemporalDispatcher{Orchestrator: f, Logger: quietLogger()}, HandlerOptions{Logger: quietLogger()})
			w := post(h, ctJSON, load(t, tt.file))
			if got, want := w.Code, tt.status; got != want {
				t.Errorf("status = %d, want %d (%s)", got, want, w.Body)
			}
			if got := len(f.Calls()); got != tt.calls {
				t.Errorf("%d calls, want %d: %+v", got, tt.calls, f.Calls())
			}
		})
	}

	// Data without a model name can never start a release: 400, no start.
	f := &orchestratortest.Fake{}
	h := NewHandler(&TemporalDispatcher{Orchestrator: f, Logger: quietLogger()}, HandlerOptions{Logger: quietLogger()})
	body := `[{"id":"e1","eventType":"Microsoft.MachineLearningServices.ModelRegistered","subject":"models/x:1","eventTime":"2026-01-01T00:00:00Z","data":{"modelVersion":"1"}}]`
	w := post(h, ctJSON, []byte(body))
	if got, want := w.Code, 400; got != want {
		t.Fatalf("status = %d, want %d (%s)", got, want, w.Body)
	}
	if got, want := decodeBody(t, w)["message"], `event[0] (id "e1"): ModelRegistered data: missing "modelName"`; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("calls = %+v, want none", calls)
	}
}

// How the dispatcher maps each of the orchestrator's error codes, on each
// path that calls it: Event Grid's status and the counter's result.
func TestOrchestratorErrorsMapToStatus(t *testing.T) {
	files := map[string]string{
		orchestratortest.StartRelease:    "eventgrid_model_registered.json",
		orchestratortest.TriggerRetrain:  "eventgrid_dataset_drift_detected_model.json",
		orchestratortest.SignalRunStatus: "eventgrid_run_completed_retrain.json",
	}
	tests := []struct {
		method string
		err    error
		status int
		result string
	}{
		{orchestratortest.StartRelease, modelfleet.Errorf(modelfleet.ECONFLICT, "already ran"), 200, "already_ran"},
		{orchestratortest.StartRelease, modelfleet.Errorf(modelfleet.EINVALID, "bad"), 400, "invalid"},
		{orchestratortest.StartRelease, errors.New("down"), 503, "error"},
		{orchestratortest.TriggerRetrain, modelfleet.Errorf(modelfleet.EINVALID, "bad"), 400, "invalid"},
		{orchestratortest.TriggerRetrain, errors.New("down"), 503, "error"},
		{orchestratortest.SignalRunStatus, modelfleet.Errorf(modelfleet.ENOTFOUND, "not running"), 200, "no_workflow"},
		{orchestratortest.SignalRunStatus, modelfleet.Errorf(modelfleet.EINVALID, "bad"), 400, "invalid"},
		{orchestratortest.SignalRunStatus, errors.New("down"), 503, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.method+"/"+tt.result+"/"+modelfleet.ErrorCode(tt.err), func(t *testing.T) {
			f := &orchestratortest.Fake{Errs: map[string]error{tt.method: tt.err}}
			reg := prometheus.NewRegistry()
			h := NewHandler(NewTemporalDispatcher(f, quietLogger(), reg), HandlerOptions{Logger: quietLogger()})
			w := post(h, ctJSON, load(t, files[tt.method]))
			if w.Code != tt.status {
				t.Errorf("status = %d, want %d (%s)", w.Code, tt.status, w.Body)
			}
			if c := only(t, f); c.Method != tt.method {
				t.Errorf("call = %s, want %s", c.Method, tt.method)
			}
			typ := first(t, files[tt.method], ctJSON).Type
			if got := counters(t, reg, "modelfleet_events_dispatched_total")[typ+"/"+tt.result]; got != 1 {
				t.Errorf("dispatched_total{%s/%s} = %v, want 1 (all: %v)", typ, tt.result, got, counters(t, reg, "modelfleet_events_dispatched_total"))
			}
		})
	}
}
