package orchestrator

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/mocks"
	"go.temporal.io/sdk/temporal"

	"github.com/modelfleet/modelfleet"
)

const model = "bearing-failure"

// startCall expects one ExecuteWorkflow of workflow and captures its
// options and input.
func startCall[In any](c *mocks.Client, workflow string, opts *client.StartWorkflowOptions, in *In) *mock.Call {
	return c.On("ExecuteWorkflow", mock.Anything, mock.Anything, workflow, mock.Anything).
		Run(func(args mock.Arguments) {
			*opts = args.Get(1).(client.StartWorkflowOptions)
			*in = args.Get(3).(In)
		}).Once()
}

func newRun(t *testing.T, id string) *mocks.WorkflowRun {
	run := mocks.NewWorkflowRun(t)
	run.On("GetRunID").Return(id).Maybe()
	return run
}

// keywords checks search attributes by their literal names: the Temporal
// server registers them and the UI filters on them, so renaming one is a
// breaking change.
func keywords(t *testing.T, sa temporal.SearchAttributes, want map[string]string) {
	t.Helper()
	if got := sa.Size(); got != len(want) {
		t.Errorf("%d search attributes, want %d", got, len(want))
	}
	for name, want := range want {
		if got, _ := sa.GetKeyword(temporal.NewSearchAttributeKeyKeyword(name)); got != want {
			t.Errorf("search attribute %s = %q, want %q", name, got, want)
		}
	}
}

func code(t *testing.T, err error, want string) {
	t.Helper()
	if got := modelfleet.ErrorCode(err); got != want {
		t.Errorf("error %v: code %q, want %q", err, got, want)
	}
}

func TestStartRelease(t *testing.T) {
	c := mocks.NewClient(t)
	var opts client.StartWorkflowOptions
	var in modelfleet.ReleaseInput
	startCall(c, modelfleet.ReleaseWorkflowName, &opts, &in).Return(newRun(t, "run-1"), nil)
	ref := modelfleet.ModelRef{Name: "sklearn_regression_model", Version: "20"}
	give := modelfleet.ReleaseInput{Model: ref, Tags: map[string]string{"auc": "0.91"}, Properties: map[string]string{"type": "test"},
		EventID: "831e1650-001e-001b-66ab-eeb76e069631", Resume: json.RawMessage(`{"x":1}`)}
	run, err := New(c).StartRelease(context.Background(), give)
	if err != nil {
		t.Fatal(err)
	}
	if want := (modelfleet.Run{WorkflowID: "release/sklearn_regression_model/20", RunID: "run-1"}); run != want {
		t.Errorf("run = %+v, want %+v", run, want)
	}
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
	keywords(t, opts.TypedSearchAttributes, map[string]string{"ModelfleetModel": ref.Name, "ModelfleetVersion": ref.Version, "ModelfleetStage": "pending"})
	if got, want := in.Model, ref; got != want {
		t.Errorf("input model = %v, want %v", got, want)
	}
	if got, want := in.EventID, give.EventID; got != want {
		t.Errorf("input event id = %q, want %q", got, want)
	}
	if got, want := in.Tags, give.Tags; !maps.Equal(got, want) {
		t.Errorf("input tags = %v, want %v", got, want)
	}
	if got, want := in.Properties, give.Properties; !maps.Equal(got, want) {
		t.Errorf("input properties = %v, want %v", got, want)
	}
	if in.Resume != nil {
		t.Errorf("input resume = %s, want none: only the release continuing as new sets it", in.Resume)
	}
}

// A release that already ran is ECONFLICT; a transient failure keeps its
// cause and is EINTERNAL (the gateway answers 503 and Event Grid retries);
// an invalid reference never reaches Temporal.
func TestStartReleaseErrors(t *testing.T) {
	ref := modelfleet.ModelRef{Name: model, Version: "3"}
	c := mocks.NewClient(t)
	var opts client.StartWorkflowOptions
	var in modelfleet.ReleaseInput
	startCall(c, modelfleet.ReleaseWorkflowName, &opts, &in).Return(nil, serviceerror.NewWorkflowExecutionAlreadyStarted("already started", "req", "run-0"))
	_, err := New(c).StartRelease(context.Background(), modelfleet.ReleaseInput{Model: ref})
	code(t, err, modelfleet.ECONFLICT)
	if !strings.Contains(modelfleet.ErrorMessage(err), "release/bearing-failure/3 already ran") {
		t.Errorf("message = %q", modelfleet.ErrorMessage(err))
	}

	unavailable := serviceerror.NewUnavailable("frontend down")
	c = mocks.NewClient(t)
	startCall(c, modelfleet.ReleaseWorkflowName, &opts, &in).Return(nil, unavailable)
	_, err = New(c).StartRelease(context.Background(), modelfleet.ReleaseInput{Model: ref})
	if !errors.Is(err, unavailable) {
		t.Errorf("error = %v, want %v", err, unavailable)
	}
	code(t, err, modelfleet.EINTERNAL)

	c = mocks.NewClient(t) // no calls expected
	_, err = New(c).StartRelease(context.Background(), modelfleet.ReleaseInput{Model: modelfleet.ModelRef{Name: "../x", Version: "1"}})
	code(t, err, modelfleet.EINVALID)
}

func TestStartWorkloadRelease(t *testing.T) {
	c := mocks.NewClient(t)
	var opts client.StartWorkflowOptions
	var in modelfleet.WorkloadReleaseInput
	startCall(c, modelfleet.WorkloadReleaseWorkflowName, &opts, &in).Return(newRun(t, "run-1"), nil)
	wl := modelfleet.WorkloadRef{Name: "bearing-failure-line", Version: "2"}
	give := modelfleet.WorkloadReleaseInput{Model: model, Workload: wl, Policy: "waves: []", By: "alice", Resume: json.RawMessage(`{}`)}
	run, err := New(c).StartWorkloadRelease(context.Background(), give)
	if err != nil {
		t.Fatal(err)
	}
	id := "release/bearing-failure/workload/bearing-failure-line/2"
	if want := (modelfleet.Run{WorkflowID: id, RunID: "run-1"}); run != want {
		t.Errorf("run = %+v, want %+v", run, want)
	}
	if opts.ID != id || opts.TaskQueue != modelfleet.CloudTaskQueue {
		t.Errorf("id, queue = %q, %q", opts.ID, opts.TaskQueue)
	}
	if got, want := opts.WorkflowIDReusePolicy, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE; got != want {
		t.Errorf("reuse policy = %v, want %v", got, want)
	}
	if got, want := opts.WorkflowIDConflictPolicy, enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL; got != want {
		t.Errorf("conflict policy = %v, want %v", got, want)
	}
	if !opts.WorkflowExecutionErrorWhenAlreadyStarted {
		t.Errorf("WorkflowExecutionErrorWhenAlreadyStarted = false, want true")
	}
	keywords(t, opts.TypedSearchAttributes, map[string]string{"ModelfleetModel": model, "ModelfleetWorkload": "bearing-failure-line:2", "ModelfleetStage": "pending"})
	give.Resume = nil
	if in.Model != give.Model || in.Workload != give.Workload || in.Policy != give.Policy || in.By != give.By || in.Resume != nil {
		t.Errorf("input = %+v, want %+v", in, give)
	}

	// Running: refused, saying so.
	c = mocks.NewClient(t)
	startCall(c, modelfleet.WorkloadReleaseWorkflowName, &opts, &in).Return(nil, serviceerror.NewWorkflowExecutionAlreadyStarted("running", "req", "run-0"))
	_, err = New(c).StartWorkloadRelease(context.Background(), give)
	code(t, err, modelfleet.ECONFLICT)
	if got, want := modelfleet.ErrorMessage(err), "release "+id+" is already running"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	// Invalid: never sent.
	c = mocks.NewClient(t)
	for _, bad := range []modelfleet.WorkloadReleaseInput{{Model: "../x", Workload: wl}, {Model: model, Workload: modelfleet.WorkloadRef{Name: "line"}}} {
		_, err = New(c).StartWorkloadRelease(context.Background(), bad)
		code(t, err, modelfleet.EINVALID)
	}
}

func TestTriggerRetrain(t *testing.T) {
	c := mocks.NewClient(t)
	var (
		id, signal string
		arg        any
		opts       client.StartWorkflowOptions
		workflow   any
		in         any
	)
	c.On("SignalWithStartWorkflow", mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything).
		Run(func(args mock.Arguments) {
			id, signal, arg = args.String(1), args.String(2), args.Get(3)
			opts, workflow, in = args.Get(4).(client.StartWorkflowOptions), args.Get(5), args.Get(6)
		}).Return(newRun(t, "run-1"), nil).Once()
	tr := modelfleet.RetrainTrigger{Reason: modelfleet.ReasonDatasetDrift, EventID: "e1", Model: model, DriftCoefficient: 0.41, Monitor: "bearing-failure--weekly"}
	run, err := New(c).TriggerRetrain(context.Background(), modelfleet.RetrainInput{Model: "ignored", Debounce: time.Minute, State: json.RawMessage(`{}`)}, tr)
	if err != nil {
		t.Fatal(err)
	}
	if want := (modelfleet.Run{WorkflowID: "retrain/bearing-failure", RunID: "run-1"}); run != want {
		t.Errorf("run = %+v, want %+v", run, want)
	}
	if opts.ID != id || id != modelfleet.RetrainWorkflowID(model) || id != "retrain/bearing-failure" {
		t.Errorf("ids = %q / %q", id, opts.ID)
	}
	if got, want := opts.TaskQueue, modelfleet.CloudTaskQueue; got != want {
		t.Errorf("task queue = %q, want %q", got, want)
	}
	if got, want := opts.WorkflowIDReusePolicy, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE; got != want {
		t.Errorf("reuse policy = %v, want %v", got, want)
	}
	if got, want := opts.WorkflowIDConflictPolicy, enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING; got != want {
		t.Errorf("conflict policy = %v, want %v", got, want)
	}
	keywords(t, opts.TypedSearchAttributes, map[string]string{"ModelfleetModel": model, "ModelfleetStage": modelfleet.RetrainCollecting})
	if signal != "trigger" || workflow != "Retrain" {
		t.Errorf("signal, workflow = %q, %v", signal, workflow)
	}
	if got := in.(modelfleet.RetrainInput); got.Model != model || got.Debounce != time.Minute || got.State != nil {
		t.Errorf("input = %+v", got)
	}
	if got := arg.(modelfleet.RetrainTrigger); got != tr {
		t.Errorf("trigger = %+v, want %+v", got, tr)
	}

	unavailable := serviceerror.NewUnavailable("down")
	c = mocks.NewClient(t)
	c.On("SignalWithStartWorkflow", mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(nil, unavailable).Once()
	_, err = New(c).TriggerRetrain(context.Background(), modelfleet.RetrainInput{}, tr)
	if !errors.Is(err, unavailable) {
		t.Errorf("error = %v, want %v", err, unavailable)
	}
	code(t, err, modelfleet.EINTERNAL)

	tr.Model = "../x"
	_, err = New(mocks.NewClient(t)).TriggerRetrain(context.Background(), modelfleet.RetrainInput{}, tr)
	code(t, err, modelfleet.EINVALID)
}

// Signals reach the running workflow; none running is ENOTFOUND, anything
// else keeps its cause; invalid ones are never sent.
func TestSignals(t *testing.T) {
	ctx := context.Background()
	rs := modelfleet.RunStatus{Model: model, RunID: "r1", Status: "Completed", EventID: "e1"}
	ctl := modelfleet.Control{By: "alice", Reason: "canary fine"}
	v := modelfleet.MonitorVerdict{ID: "v1", Site: "s1", Version: "3", Reason: "psi"}
	rel := "release/bearing-failure/3"
	sends := []struct {
		name         string
		send         func(*Temporal) error
		id, signal   string
		arg          any
		notFoundText string
	}{
		{"run status", func(o *Temporal) error { return o.SignalRunStatus(ctx, rs) }, "retrain/bearing-failure", "run-status", rs, "no retraining workflow retrain/bearing-failure is running"},
		{"control", func(o *Temporal) error { return o.SignalControl(ctx, rel, modelfleet.SignalApprove, ctl) }, rel, "approve", ctl, "no release " + rel + " is running"},
		{"verdict", func(o *Temporal) error { return o.SignalVerdict(ctx, rel, v) }, rel, "monitor-verdict", v, "no release " + rel + " is running"},
	}
	for _, s := range sends {
		t.Run(s.name, func(t *testing.T) {
			c := mocks.NewClient(t)
			c.On("SignalWorkflow", mock.Anything, s.id, "", s.signal, s.arg).Return(nil).Once()
			if err := s.send(New(c)); err != nil {
				t.Fatal(err)
			}

			c = mocks.NewClient(t)
			c.On("SignalWorkflow", mock.Anything, s.id, "", s.signal, s.arg).Return(serviceerror.NewNotFound("workflow execution not found")).Once()
			err := s.send(New(c))
			code(t, err, modelfleet.ENOTFOUND)
			if got := modelfleet.ErrorMessage(err); got != s.notFoundText {
				t.Errorf("message = %q, want %q", got, s.notFoundText)
			}

			unavailable := serviceerror.NewUnavailable("down")
			c = mocks.NewClient(t)
			c.On("SignalWorkflow", mock.Anything, s.id, "", s.signal, s.arg).Return(unavailable).Once()
			err = s.send(New(c))
			if !errors.Is(err, unavailable) {
				t.Errorf("error = %v, want %v", err, unavailable)
			}
			code(t, err, modelfleet.EINTERNAL)
		})
	}

	o := New(mocks.NewClient(t)) // none of these reach Temporal
	code(t, o.SignalControl(ctx, rel, "approve-all", ctl), modelfleet.EINVALID)
	code(t, o.SignalControl(ctx, rel, modelfleet.SignalMonitorVerdict, ctl), modelfleet.EINVALID)
	code(t, o.SignalControl(ctx, "retrain/bearing-failure", modelfleet.SignalAbort, ctl), modelfleet.EINVALID)
	code(t, o.SignalRunStatus(ctx, modelfleet.RunStatus{Model: "../x"}), modelfleet.EINVALID)
	code(t, o.SignalVerdict(ctx, "", v), modelfleet.EINVALID)
}

// payload is a Keyword search attribute as the visibility store returns it.
func payload(s string) string {
	data, _ := json.Marshal(s)
	return `{"metadata":{"encoding":"` + base64.StdEncoding.EncodeToString([]byte("json/plain")) + `"},"data":"` + base64.StdEncoding.EncodeToString(data) + `"}`
}

// execution is one WorkflowExecutionInfo, as JSON; closed may be "".
func execution(id, status string, attrs map[string]string, started, closed string) string {
	var fields []string
	for k, v := range attrs {
		fields = append(fields, `"`+k+`":`+payload(v))
	}
	js := `{"execution":{"workflowId":"` + id + `"},"status":"` + status + `","startTime":"` + started + `"`
	if closed != "" {
		js += `,"closeTime":"` + closed + `"`
	}
	if len(fields) > 0 {
		js += `,"searchAttributes":{"indexedFields":{` + strings.Join(fields, ",") + `}}`
	}
	return js + "}"
}

func page(t *testing.T, token string, executions ...string) *workflowservice.ListWorkflowExecutionsResponse {
	t.Helper()
	js := `{"nextPageToken":"` + base64.StdEncoding.EncodeToString([]byte(token)) + `","executions":[` + strings.Join(executions, ",") + `]}`
	var r workflowservice.ListWorkflowExecutionsResponse
	if err := (temporalproto.CustomJSONUnmarshalOptions{}).Unmarshal([]byte(js), &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// lister answers ListWorkflow with pages by their token ("" first) and
// records the queries.
func lister(t *testing.T, pages map[string]*workflowservice.ListWorkflowExecutionsResponse) (*mocks.Client, *[]string) {
	c := mocks.NewClient(t)
	var queries []string
	c.On("ListWorkflow", mock.Anything, mock.Anything).Return(func(_ context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
		queries = append(queries, req.GetQuery())
		return pages[string(req.GetNextPageToken())], nil
	})
	return c, &queries
}

const (
	running   = "WORKFLOW_EXECUTION_STATUS_RUNNING"
	completed = "WORKFLOW_EXECUTION_STATUS_COMPLETED"
	failed    = "WORKFLOW_EXECUTION_STATUS_FAILED"
)

func TestListReleases(t *testing.T) {
	pages := map[string]*workflowservice.ListWorkflowExecutionsResponse{
		"": page(t, "p2",
			execution("release/bearing-failure/workload/line/2", running,
				map[string]string{"ModelfleetModel": model, "ModelfleetWorkload": "line:2", "ModelfleetStage": "deploying"}, "2026-03-01T12:00:00Z", ""),
			execution("release/bearing-failure/3", completed,
				map[string]string{"ModelfleetModel": model, "ModelfleetVersion": "3", "ModelfleetStage": "rolled-back"}, "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z")),
		"p2": page(t, "",
			// Before its first upsert: read from the ID.
			execution("release/bearing-failure/2", failed, nil, "2026-03-01T09:00:00Z", "2026-03-01T09:30:00Z")),
	}
	c, queries := lister(t, pages)
	got, err := New(c).ListReleases(context.Background(), model, 0)
	if err != nil {
		t.Fatal(err)
	}
	closed := time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)
	closed2 := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	want := []modelfleet.ReleaseSummary{
		{Model: modelfleet.ModelRef{Name: model}, Workload: &modelfleet.WorkloadRef{Name: "line", Version: "2"}, State: "deploying",
			Workflow: "release/bearing-failure/workload/line/2", StartedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
		{Model: modelfleet.ModelRef{Name: model, Version: "3"}, State: "rolled-back", Workflow: "release/bearing-failure/3",
			StartedAt: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), ClosedAt: &closed},
		{Model: modelfleet.ModelRef{Name: model, Version: "2"}, State: "failed", Workflow: "release/bearing-failure/2",
			StartedAt: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), ClosedAt: &closed2},
	}
	gotJS, _ := json.Marshal(got)
	wantJS, _ := json.Marshal(want)
	if string(gotJS) != string(wantJS) {
		t.Errorf("releases =\n%s\nwant\n%s", gotJS, wantJS)
	}
	wantQuery := `(WorkflowType = "Release" OR WorkflowType = "WorkloadRelease") AND ModelfleetModel = "bearing-failure"`
	if len(*queries) != 2 || (*queries)[0] != wantQuery || (*queries)[1] != wantQuery {
		t.Errorf("queries = %q, want %q twice", *queries, wantQuery)
	}

	c, queries = lister(t, pages)
	if got, err := New(c).ListReleases(context.Background(), "", 2); err != nil || len(got) != 2 {
		t.Errorf("limit 2: %d releases, %v", len(got), err)
	}
	if len(*queries) != 1 || (*queries)[0] != `(WorkflowType = "Release" OR WorkflowType = "WorkloadRelease")` {
		t.Errorf("queries = %q", *queries)
	}
	_, err = New(mocks.NewClient(t)).ListReleases(context.Background(), "bad name", 0)
	code(t, err, modelfleet.EINVALID)
}

func TestReleaseStatus(t *testing.T) {
	ctx := context.Background()
	id := "release/bearing-failure/3"
	want := modelfleet.ReleaseStatus{Model: modelfleet.ModelRef{Name: model, Version: "3"}, State: modelfleet.StateDeploying, Sites: []modelfleet.SiteStatus{{Site: "s1"}}}
	c := mocks.NewClient(t)
	v := mocks.NewEncodedValue(t)
	v.On("Get", mock.Anything).Run(func(args mock.Arguments) { *args.Get(0).(*modelfleet.ReleaseStatus) = want }).Return(nil).Once()
	c.On("QueryWorkflow", mock.Anything, id, "", "status").Return(v, nil).Once()
	st, err := New(c).ReleaseStatus(ctx, id)
	if err != nil || st.State != want.State || st.Model != want.Model || len(st.Sites) != 1 {
		t.Errorf("status = %+v, %v; want %+v", st, err, want)
	}

	// Never started: ENOTFOUND.
	c = mocks.NewClient(t)
	c.On("QueryWorkflow", mock.Anything, id, "", "status").Return(nil, serviceerror.NewNotFound("not found")).Once()
	_, err = New(c).ReleaseStatus(ctx, id)
	code(t, err, modelfleet.ENOTFOUND)

	// No worker answers: the state from the execution and its last stage.
	describe := func(info string) *workflowservice.DescribeWorkflowExecutionResponse {
		var r workflowservice.DescribeWorkflowExecutionResponse
		if err := (temporalproto.CustomJSONUnmarshalOptions{}).Unmarshal([]byte(`{"workflowExecutionInfo":`+info+`}`), &r); err != nil {
			t.Fatal(err)
		}
		return &r
	}
	for _, tt := range []struct {
		id, info string
		state    string
		workload *modelfleet.WorkloadRef
	}{
		{id, execution(id, completed, map[string]string{"ModelfleetModel": model, "ModelfleetVersion": "3", "ModelfleetStage": "aborted"}, "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z"), "aborted", nil},
		{id, execution(id, running, nil, "2026-03-01T10:00:00Z", ""), "pending", nil},
		{"release/bearing-failure/workload/line/2", execution("release/bearing-failure/workload/line/2", completed, map[string]string{"ModelfleetModel": model, "ModelfleetWorkload": "line:2", "ModelfleetStage": "deploying"}, "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z"),
			"succeeded", &modelfleet.WorkloadRef{Name: "line", Version: "2"}},
	} {
		c = mocks.NewClient(t)
		c.On("QueryWorkflow", mock.Anything, tt.id, "", "status").Return(nil, serviceerror.NewDeadlineExceeded("no poller")).Once()
		c.On("DescribeWorkflowExecution", mock.Anything, tt.id, "").Return(describe(tt.info), nil).Once()
		if strings.Contains(tt.info, completed) {
			// A result that does not decode (as one from before results
			// carried the status) leaves the summary.
			run := mocks.NewWorkflowRun(t)
			run.On("Get", mock.Anything, mock.Anything).Return(errors.New("no result")).Once()
			c.On("GetWorkflow", mock.Anything, tt.id, mock.Anything).Return(run).Once()
		}
		st, err := New(c).ReleaseStatus(ctx, tt.id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != tt.state || st.Model.Name != model || st.WorkflowID() != tt.id || st.Sites == nil ||
			!strings.HasPrefix(st.Reason, "status query unavailable (no cloud worker running?): ") {
			t.Errorf("%s: status = %+v, want state %s", tt.id, st, tt.state)
		}
		if (st.Workload == nil) != (tt.workload == nil) || st.Workload != nil && *st.Workload != *tt.workload {
			t.Errorf("%s: workload = %v, want %v", tt.id, st.Workload, tt.workload)
		}
	}

	// The query misses a release that completed: its result, in full.
	c = mocks.NewClient(t)
	c.On("QueryWorkflow", mock.Anything, id, "", "status").Return(nil, serviceerror.NewDeadlineExceeded("closing")).Once()
	c.On("DescribeWorkflowExecution", mock.Anything, id, "").Return(describe(execution(id, completed, nil, "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z")), nil).Once()
	run := mocks.NewWorkflowRun(t)
	final := want
	final.State, final.Controls = modelfleet.StateSucceeded, []modelfleet.ControlRecord{{Action: "approve", By: "ops"}}
	run.On("Get", mock.Anything, mock.Anything).Run(func(args mock.Arguments) { *args.Get(1).(*modelfleet.ReleaseStatus) = final }).Return(nil).Once()
	c.On("GetWorkflow", mock.Anything, id, mock.Anything).Return(run).Once()
	st, err = New(c).ReleaseStatus(ctx, id)
	if err != nil || st.State != modelfleet.StateSucceeded || len(st.Controls) != 1 || st.Reason != "" {
		t.Errorf("status of a completed release = %+v, %v; want its result %+v", st, err, final)
	}

	// Neither answers: the query's error.
	c = mocks.NewClient(t)
	down := serviceerror.NewUnavailable("down")
	c.On("QueryWorkflow", mock.Anything, id, "", "status").Return(nil, down).Once()
	c.On("DescribeWorkflowExecution", mock.Anything, id, "").Return(nil, serviceerror.NewUnavailable("still down")).Once()
	_, err = New(c).ReleaseStatus(ctx, id)
	if !errors.Is(err, down) {
		t.Errorf("error = %v, want %v", err, down)
	}
	code(t, err, modelfleet.EINTERNAL)

	_, err = New(mocks.NewClient(t)).ReleaseStatus(ctx, "retrain/bearing-failure")
	code(t, err, modelfleet.EINVALID)
}

// The champion is the version of the latest release that succeeded.
func TestChampion(t *testing.T) {
	version := func(v, closed string) string {
		return execution("release/bearing-failure/"+v, completed, map[string]string{"ModelfleetVersion": v}, "2026-03-01T08:00:00Z", closed)
	}
	// The last execution has no version attribute.
	c, queries := lister(t, map[string]*workflowservice.ListWorkflowExecutionsResponse{
		"":   page(t, "p2", version("3", "2026-03-01T09:00:00Z"), version("5", "2026-03-01T12:00:00Z")),
		"p2": page(t, "", version("4", "2026-03-01T10:00:00Z"), execution("release/bearing-failure/6", completed, nil, "2026-03-01T08:00:00Z", "2026-03-01T11:00:00Z")),
	})
	v, err := New(c).Champion(context.Background(), model)
	if err != nil || v != "5" {
		t.Errorf("champion = %q, %v; want 5 (the latest to close)", v, err)
	}
	want := `WorkflowType = "Release" AND ModelfleetModel = "bearing-failure" AND ModelfleetStage = "succeeded" AND ExecutionStatus = 'Completed'`
	if len(*queries) != 2 || (*queries)[0] != want || ChampionQuery(model) != want {
		t.Errorf("queries = %q, want %q", *queries, want)
	}
	// Without the attribute, the version comes from the workflow ID.
	c2, _ := lister(t, map[string]*workflowservice.ListWorkflowExecutionsResponse{
		"": page(t, "", execution("release/bearing-failure/6", completed, nil, "2026-03-01T08:00:00Z", "2026-03-01T11:00:00Z")),
	})
	if v, err := New(c2).Champion(context.Background(), model); err != nil || v != "6" {
		t.Errorf("champion from the workflow id = %q, %v", v, err)
	}
	// None succeeded.
	c3, _ := lister(t, map[string]*workflowservice.ListWorkflowExecutionsResponse{"": page(t, "")})
	if v, err := New(c3).Champion(context.Background(), model); err != nil || v != "" {
		t.Errorf("champion of none = %q, %v", v, err)
	}
	// MaxScan bounds the pages read.
	c4, queries := lister(t, map[string]*workflowservice.ListWorkflowExecutionsResponse{
		"":   page(t, "p2", version("3", "2026-03-01T09:00:00Z")),
		"p2": page(t, "", version("4", "2026-03-01T10:00:00Z")),
	})
	if v, err := (&Temporal{Client: c4, MaxScan: 1}).Champion(context.Background(), model); err != nil || v != "3" || len(*queries) != 1 {
		t.Errorf("champion within MaxScan 1 = %q, %v after %d pages", v, err, len(*queries))
	}
	_, err = New(mocks.NewClient(t)).Champion(context.Background(), "bad name")
	code(t, err, modelfleet.EINVALID)
	var _ modelfleet.Champions = New(nil)
}

func TestKeyword(t *testing.T) {
	pg := page(t, "", execution("release/bearing-failure/6", completed, map[string]string{"ModelfleetVersion": "6"}, "2026-03-01T08:00:00Z", ""),
		`{"searchAttributes":{"indexedFields":{"ModelfleetVersion":{"metadata":{"encoding":"YmluYXJ5L251bGw="}}}}}`)
	if got := keyword(pg.Executions[0].GetSearchAttributes().GetIndexedFields(), "ModelfleetVersion"); got != "6" {
		t.Errorf("keyword = %q, want 6", got)
	}
	if got := keyword(pg.Executions[0].GetSearchAttributes().GetIndexedFields(), "ModelfleetStage"); got != "" {
		t.Errorf("keyword of a missing attribute = %q", got)
	}
	if got := keyword(pg.Executions[1].GetSearchAttributes().GetIndexedFields(), "ModelfleetVersion"); got != "" {
		t.Errorf("keyword of a null = %q", got)
	}
}

func TestStateOf(t *testing.T) {
	for _, tt := range []struct {
		status enumspb.WorkflowExecutionStatus
		stage  string
		want   string
	}{
		{enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, "", "pending"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, "awaiting-approval", "awaiting-approval"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, "rolled-back", "rolled-back"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, "deploying", "succeeded"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, "aborted", "aborted"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, "rolled-back", "rolled-back"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, "failed", "failed"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, "deploying", "failed"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, "", "canceled"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, "deploying", "terminated"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT, "", "timed-out"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW, "", "continued"},
	} {
		if got := stateOf(tt.status, tt.stage); got != tt.want {
			t.Errorf("stateOf(%v, %q) = %q, want %q", tt.status, tt.stage, got, tt.want)
		}
	}
}

func TestParseReleaseID(t *testing.T) {
	for _, tt := range []struct {
		id    string
		model modelfleet.ModelRef
		wl    *modelfleet.WorkloadRef
	}{
		{"release/m/3", modelfleet.ModelRef{Name: "m", Version: "3"}, nil},
		{"release/m/workload/line/2", modelfleet.ModelRef{Name: "m"}, &modelfleet.WorkloadRef{Name: "line", Version: "2"}},
		{"retrain/m", modelfleet.ModelRef{}, nil},
		{"release/m", modelfleet.ModelRef{}, nil},
		{"release/m/other/line/2", modelfleet.ModelRef{}, nil},
	} {
		m, wl := parseReleaseID(tt.id)
		if m != tt.model || (wl == nil) != (tt.wl == nil) || wl != nil && *wl != *tt.wl {
			t.Errorf("parseReleaseID(%q) = %v, %v; want %v, %v", tt.id, m, wl, tt.model, tt.wl)
		}
	}
}

// The names are literal: the dev server is started with them, and a
// Temporal cluster must have them registered.
func TestSearchAttributeTypes(t *testing.T) {
	got := strings.Join(SearchAttributeTypes(), " ")
	want := "ModelfleetModel=Keyword ModelfleetVersion=Keyword ModelfleetStage=Keyword ModelfleetSite=KeywordList ModelfleetWorkload=Keyword"
	if got != want {
		t.Errorf("SearchAttributeTypes = %q, want %q", got, want)
	}
}

// The keys of the orchestrator, not of its caller, go into a release's
// input: whoever starts a release cannot choose whose statements it
// accepts. Without keys of its own it passes the caller's.
func TestStartCarriesControlKeys(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ours := []modelfleet.TrustedKey{{ID: modelfleet.KeyID(pub), PublicKey: pub}, {ID: "ed25519:old", PublicKey: make([]byte, 32)}}
	theirs := []modelfleet.TrustedKey{{ID: "ed25519:caller", PublicKey: make([]byte, 32)}}
	eq := func(a, b []modelfleet.TrustedKey) bool {
		return slices.EqualFunc(a, b, func(x, y modelfleet.TrustedKey) bool {
			return x.ID == y.ID && string(x.PublicKey) == string(y.PublicKey)
		})
	}
	for _, tc := range []struct {
		name       string
		keys, give []modelfleet.TrustedKey
		want       []modelfleet.TrustedKey
	}{
		{"its keys", ours, nil, ours},
		{"its keys over the caller's", ours, theirs, ours},
		{"none: the caller's", nil, theirs, theirs},
		{"none at all", nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mocks.NewClient(t)
			var opts client.StartWorkflowOptions
			var in modelfleet.ReleaseInput
			startCall(c, modelfleet.ReleaseWorkflowName, &opts, &in).Return(newRun(t, "run-1"), nil)
			o := New(c)
			o.ControlKeys = tc.keys
			if _, err := o.StartRelease(context.Background(), modelfleet.ReleaseInput{Model: modelfleet.ModelRef{Name: model, Version: "1"}, ControlKeys: tc.give}); err != nil {
				t.Fatal(err)
			}
			if !eq(in.ControlKeys, tc.want) {
				t.Errorf("release input keys = %v, want %v", in.ControlKeys, tc.want)
			}
			var win modelfleet.WorkloadReleaseInput
			startCall(c, modelfleet.WorkloadReleaseWorkflowName, &opts, &win).Return(newRun(t, "run-2"), nil)
			wl := modelfleet.WorkloadReleaseInput{Model: model, Workload: modelfleet.WorkloadRef{Name: "line", Version: "2"}, ControlKeys: tc.give}
			if _, err := o.StartWorkloadRelease(context.Background(), wl); err != nil {
				t.Fatal(err)
			}
			if !eq(win.ControlKeys, tc.want) {
				t.Errorf("workload release input keys = %v, want %v", win.ControlKeys, tc.want)
			}
		})
	}
}
