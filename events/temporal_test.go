package events

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/mock"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/mocks"
	"go.temporal.io/sdk/temporal"

	"github.com/modelfleet/modelfleet"
)

// startCall expects one ExecuteWorkflow and captures its options and input.
func startCall(c *mocks.Client, opts *client.StartWorkflowOptions, in *modelfleet.ReleaseInput) *mock.Call {
	return c.On("ExecuteWorkflow", mock.Anything, mock.Anything, modelfleet.ReleaseWorkflowName, mock.Anything).
		Run(func(args mock.Arguments) {
			*opts = args.Get(1).(client.StartWorkflowOptions)
			*in = args.Get(3).(modelfleet.ReleaseInput)
		}).Once()
}

func TestTemporalDispatcherStartsRelease(t *testing.T) {
	c := mocks.NewClient(t)
	run := mocks.NewWorkflowRun(t)
	run.On("GetRunID").Return("run-1").Maybe()
	var opts client.StartWorkflowOptions
	var in modelfleet.ReleaseInput
	startCall(c, &opts, &in).Return(run, nil)
	reg := prometheus.NewRegistry()
	d := NewTemporalDispatcher(c, quietLogger(), reg)

	ev := first(t, "eventgrid_model_registered_sample.json", ctJSON)
	if err := d.Dispatch(context.Background(), ev); err != nil {
		t.Fatalf("Dispatch: %v", err)
	}
	ref := modelfleet.ModelRef{Name: "sklearn_regression_model", Version: "20"}
	if got, want := opts.ID, "release/sklearn_regression_model/20"; got != want {
		t.Errorf("workflow ID = %q, want %q", got, want)
	}
	if got, want := opts.ID, modelfleet.ReleaseWorkflowID(ref); got != want {
		t.Errorf("workflow ID = %q, want %q", got, want)
	}
	if got, want := opts.TaskQueue, modelfleet.CloudTaskQueue; got != want {
		t.Errorf("task queue = %q, want %q", got, want)
	}
	if got, want := opts.WorkflowIDReusePolicy, enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE; got != want {
		t.Errorf("reuse policy = %v, want %v", got, want)
	}
	if got, want := opts.WorkflowIDConflictPolicy, enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING; got != want {
		t.Errorf("conflict policy = %v, want %v", got, want)
	}
	if !opts.WorkflowExecutionErrorWhenAlreadyStarted {
		t.Errorf("WorkflowExecutionErrorWhenAlreadyStarted = false, want true")
	}
	// The names are literal here: the Temporal server registers them and
	// the UI filters on them, so renaming one is a breaking change.
	for name, want := range map[string]string{"ModelfleetModel": ref.Name, "ModelfleetVersion": ref.Version, "ModelfleetStage": "pending"} {
		if got, _ := opts.TypedSearchAttributes.GetKeyword(temporal.NewSearchAttributeKeyKeyword(name)); got != want {
			t.Errorf("search attribute %s = %q, want %q", name, got, want)
		}
	}
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
	if got, want := counters(t, reg, "modelfleet_events_dispatched_total")[modelfleet.EventModelRegistered+"/started"], 1.0; got != want {
		t.Errorf("dispatched_total{started} = %v, want %v", got, want)
	}
}

func TestTemporalDispatcherAlreadyStartedIsSuccess(t *testing.T) {
	c := mocks.NewClient(t)
	var opts client.StartWorkflowOptions
	var in modelfleet.ReleaseInput
	startCall(c, &opts, &in).Return(nil, serviceerror.NewWorkflowExecutionAlreadyStarted("already started", "req", "run-0"))
	d := &TemporalDispatcher{Client: c, Logger: quietLogger()}
	if err := d.Dispatch(context.Background(), first(t, "eventgrid_model_registered.json", ctJSON)); err != nil {
		t.Fatalf("Dispatch = %v, want nil for a release that already ran", err)
	}
}

func TestTemporalDispatcherTransientError(t *testing.T) {
	c := mocks.NewClient(t)
	var opts client.StartWorkflowOptions
	var in modelfleet.ReleaseInput
	unavailable := serviceerror.NewUnavailable("frontend down")
	startCall(c, &opts, &in).Return(nil, unavailable)
	d := &TemporalDispatcher{Client: c, Logger: quietLogger()}
	err := d.Dispatch(context.Background(), first(t, "cloudevent_model_registered.json", ctCloud))
	if !errors.Is(err, unavailable) {
		t.Fatalf("Dispatch = %v, want %v", err, unavailable)
	}
	if got, want := modelfleet.ErrorCode(err), modelfleet.EINTERNAL; got != want {
		t.Errorf("code = %q, want %q (transient: the handler answers 503)", got, want)
	}
}

func TestTemporalDispatcherInvalidModelRegistered(t *testing.T) {
	c := mocks.NewClient(t) // no calls expected
	d := &TemporalDispatcher{Client: c, Logger: quietLogger()}
	err := d.Dispatch(context.Background(), registered(`{"modelVersion":"1"}`))
	if got, want := modelfleet.ErrorCode(err), modelfleet.EINVALID; got != want {
		t.Fatalf("code = %q, want %q (%v)", got, want, err)
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

	c := mocks.NewClient(t) // no call must reach Temporal
	reg := prometheus.NewRegistry()
	d := NewTemporalDispatcher(c, quietLogger(), reg)
	for _, ev := range evs {
		if err := d.Dispatch(context.Background(), ev); err != nil {
			t.Errorf("Dispatch(%s) = %v, want nil", ev.Type, err)
		}
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

// The handler and the Temporal dispatcher together: Event Grid's view.
func TestHandlerWithTemporalDispatcher(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		start  error // what Temporal answers; nil: no start expected if status != 200
		calls  bool
		status int
	}{
		{"started", "eventgrid_model_registered.json", nil, true, 200},
		{"redelivered after the release closed", "eventgrid_model_registered.json",
			serviceerror.NewWorkflowExecutionAlreadyStarted("already started", "req", "run-0"), true, 200},
		{"temporal unavailable", "eventgrid_model_registered.json", serviceerror.NewUnavailable("down"), true, 503},
		{"runs not submitted by modelfleet", "eventgrid_run_status_changed.json", nil, false, 200},
		{"drift of a monitor naming no model", "eventgrid_dataset_drift_detected.json", nil, false, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mocks.NewClient(t)
			if tt.calls {
				run := mocks.NewWorkflowRun(t)
				run.On("GetRunID").Return("run-1").Maybe()
				var opts client.StartWorkflowOptions
				var in modelfleet.ReleaseInput
				if tt.start != nil {
					startCall(c, &opts, &in).Return(nil, tt.start)
				} else {
					startCall(c, &opts, &in).Return(run, nil)
				}
			}
			h := NewHandler(&TemporalDispatcher{Client: c, Logger: quietLogger()}, HandlerOptions{Logger: quietLogger()})
			w := post(h, ctJSON, load(t, tt.file))
			if got, want := w.Code, tt.status; got != want {
				t.Errorf("status = %d, want %d (%s)", got, want, w.Body)
			}
		})
	}

	// Data without a model name can never start a release: 400, no start.
	c := mocks.NewClient(t)
	h := NewHandler(&TemporalDispatcher{Client: c, Logger: quietLogger()}, HandlerOptions{Logger: quietLogger()})
	body := `[{"id":"e1","eventType":"Microsoft.MachineLearningServices.ModelRegistered","subject":"models/x:1","eventTime":"2026-01-01T00:00:00Z","data":{"modelVersion":"1"}}]`
	w := post(h, ctJSON, []byte(body))
	if got, want := w.Code, 400; got != want {
		t.Fatalf("status = %d, want %d (%s)", got, want, w.Body)
	}
	if got, want := decodeBody(t, w)["message"], `event[0] (id "e1"): ModelRegistered data: missing "modelName"`; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}
