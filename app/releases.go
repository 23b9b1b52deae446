package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/orchestrator"
)

// ReleaseStatus reads a release's status: from the workflow's status query
// while a worker can answer it, else from the workflow's closing state.
func ReleaseStatus(ctx context.Context, c client.Client, ref modelfleet.ModelRef) (modelfleet.ReleaseStatus, error) {
	if err := ref.Validate(); err != nil {
		return modelfleet.ReleaseStatus{}, err
	}
	return ReleaseStatusByID(ctx, c, modelfleet.ReleaseWorkflowID(ref))
}

// ReleaseStatusByID reads the status of the release with workflow ID id: a
// model version's (modelfleet.ReleaseWorkflowID) or a workload version's
// (modelfleet.WorkloadReleaseWorkflowID).
func ReleaseStatusByID(ctx context.Context, c client.Client, id string) (modelfleet.ReleaseStatus, error) {
	if !strings.HasPrefix(id, "release/") {
		return modelfleet.ReleaseStatus{}, modelfleet.Errorf(modelfleet.EINVALID, "%q is not a release's workflow ID (release/<model>/<version> or release/<model>/workload/<name>/<version>)", id)
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := c.QueryWorkflow(qctx, id, "", modelfleet.StatusQuery)
	if err == nil {
		var st modelfleet.ReleaseStatus
		if err := v.Get(&st); err != nil {
			return st, fmt.Errorf("decode status of %s: %w", id, err)
		}
		return st, nil
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return modelfleet.ReleaseStatus{}, modelfleet.Errorf(modelfleet.ENOTFOUND, "no release %q: has the model version been registered, or the workload release started?", id)
	}
	// No worker to answer the query: fall back to what the server knows.
	desc, derr := c.DescribeWorkflowExecution(ctx, id, "")
	if derr != nil {
		return modelfleet.ReleaseStatus{}, fmt.Errorf("status of %s: %w", id, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	s := summarize(info)
	st := modelfleet.ReleaseStatus{Model: s.Model, Workload: s.Workload, Sites: []modelfleet.SiteStatus{}}
	st.State = s.State
	st.Reason = "status query unavailable (no cloud worker running?): " + err.Error()
	return st, nil
}

// ReleaseSummary is one line of `release list`.
type ReleaseSummary struct {
	// Model is the model version released; of a workload release, the
	// model the workload calls (no version), with Workload set.
	Model     modelfleet.ModelRef     `json:"model"`
	Workload  *modelfleet.WorkloadRef `json:"workload,omitempty"`
	State     string                  `json:"state"`
	Workflow  string                  `json:"workflowId"`
	StartedAt time.Time               `json:"startedAt"`
	ClosedAt  *time.Time              `json:"closedAt,omitempty"`
}

// ListReleases lists releases of model and workload versions, newest
// first, from Temporal's visibility store, using the search attributes the
// release workflows maintain.
func ListReleases(ctx context.Context, c client.Client, model string, limit int) ([]ReleaseSummary, error) {
	query := fmt.Sprintf("(WorkflowType = %q OR WorkflowType = %q)", modelfleet.ReleaseWorkflowName, modelfleet.WorkloadReleaseWorkflowName)
	if model != "" {
		if err := modelfleet.ValidateName("model name", model); err != nil {
			return nil, err
		}
		query += fmt.Sprintf(" AND %s = %q", orchestrator.ModelAttr.GetName(), model)
	}
	out := []ReleaseSummary{}
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token, PageSize: 100})
		if err != nil {
			return nil, fmt.Errorf("list releases: %w", err)
		}
		for _, info := range resp.GetExecutions() {
			out = append(out, summarize(info))
			if limit > 0 && len(out) >= limit {
				return out, nil
			}
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return out, nil
		}
	}
}

// summarize reads a release's summary from its visibility record.
func summarize(info *workflowpb.WorkflowExecutionInfo) ReleaseSummary {
	f := info.GetSearchAttributes().GetIndexedFields()
	s := ReleaseSummary{
		Model:     modelfleet.ModelRef{Name: keyword(f, orchestrator.ModelAttr.GetName()), Version: keyword(f, orchestrator.VersionAttr.GetName())},
		State:     stateOf(info.GetStatus(), keyword(f, orchestrator.StageAttr.GetName())),
		Workflow:  info.GetExecution().GetWorkflowId(),
		StartedAt: info.GetStartTime().AsTime(),
	}
	if w := keyword(f, orchestrator.WorkloadAttr.GetName()); w != "" {
		if ref, err := modelfleet.ParseWorkloadRef(w); err == nil {
			s.Workload = &ref
		}
	}
	if s.Model.Name == "" { // started before its first upsert: parse the ID
		s.Model, s.Workload = parseReleaseID(s.Workflow)
	}
	if ct := info.GetCloseTime(); ct != nil {
		t := ct.AsTime()
		s.ClosedAt = &t
	}
	return s
}

// parseReleaseID reads release/<model>/<version> and
// release/<model>/workload/<name>/<version>.
func parseReleaseID(id string) (modelfleet.ModelRef, *modelfleet.WorkloadRef) {
	parts := strings.Split(id, "/")
	switch {
	case len(parts) == 3 && parts[0] == "release":
		return modelfleet.ModelRef{Name: parts[1], Version: parts[2]}, nil
	case len(parts) == 5 && parts[0] == "release" && parts[2] == "workload":
		return modelfleet.ModelRef{Name: parts[1]}, &modelfleet.WorkloadRef{Name: parts[3], Version: parts[4]}
	}
	return modelfleet.ModelRef{}, nil
}

// StartWorkloadRelease starts the release of one workload version alone
// (workflows.WorkloadRelease). A running release of the same version is
// refused; a closed one (rolled back, say) may be run again. The search
// attributes are set at the start, so a server without ModelfleetWorkload
// registered refuses here rather than failing the workflow's first task.
func StartWorkloadRelease(ctx context.Context, c client.Client, in modelfleet.WorkloadReleaseInput) (client.WorkflowRun, error) {
	if err := modelfleet.ValidateName("model name", in.Model); err != nil {
		return nil, err
	}
	if _, err := modelfleet.ParseWorkloadRef(in.Workload.String()); err != nil {
		return nil, err
	}
	in.Resume = nil
	opts := client.StartWorkflowOptions{
		ID:                       modelfleet.WorkloadReleaseWorkflowID(in.Model, in.Workload),
		TaskQueue:                modelfleet.CloudTaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// Else the SDK hands back the running release as if it were new.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			orchestrator.ModelAttr.ValueSet(in.Model),
			orchestrator.WorkloadAttr.ValueSet(in.Workload.String()),
			orchestrator.StageAttr.ValueSet(modelfleet.StatePending),
		),
	}
	run, err := c.ExecuteWorkflow(ctx, opts, modelfleet.WorkloadReleaseWorkflowName, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return nil, modelfleet.Errorf(modelfleet.ECONFLICT, "release %s is already running", opts.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", opts.ID, err)
	}
	return run, nil
}

// stateOf maps a workflow's execution status (and, while it runs, the stage
// it last recorded) to a release state.
func stateOf(s enumspb.WorkflowExecutionStatus, stage string) string {
	// A release that ended as the operator asked (aborted, rolled back)
	// completes normally; its last recorded stage says how it ended.
	switch stage {
	case modelfleet.StateAborted, modelfleet.StateRolledBack, modelfleet.StateFailed:
		if s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return stage
		}
	}
	switch s {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		if stage == "" {
			return modelfleet.StatePending
		}
		return stage
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return modelfleet.StateSucceeded
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
		return modelfleet.StateFailed
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return "canceled"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return "terminated"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return "timed-out"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return "continued"
	default:
		return strings.ToLower(s.String())
	}
}

func keyword(fields map[string]*commonpb.Payload, name string) string {
	p, ok := fields[name]
	if !ok {
		return ""
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		return ""
	}
	return s
}
