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
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/workflows"
)

// ReleaseStatus reads a release's status: from the workflow's status query
// while a worker can answer it, else from the workflow's closing state.
func ReleaseStatus(ctx context.Context, c client.Client, ref modelfleet.ModelRef) (workflows.ReleaseStatus, error) {
	if err := ref.Validate(); err != nil {
		return workflows.ReleaseStatus{}, err
	}
	id := modelfleet.ReleaseWorkflowID(ref)
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := c.QueryWorkflow(qctx, id, "", workflows.StatusQuery)
	if err == nil {
		var st workflows.ReleaseStatus
		if err := v.Get(&st); err != nil {
			return st, fmt.Errorf("decode status of %s: %w", id, err)
		}
		return st, nil
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return workflows.ReleaseStatus{}, modelfleet.Errorf(modelfleet.ENOTFOUND, "no release of %s (workflow %q): has the model been registered?", ref, id)
	}
	// No worker to answer the query: fall back to what the server knows.
	desc, derr := c.DescribeWorkflowExecution(ctx, id, "")
	if derr != nil {
		return workflows.ReleaseStatus{}, fmt.Errorf("status of %s: %w", id, err)
	}
	st := workflows.ReleaseStatus{Model: ref, Sites: []workflows.SiteStatus{}}
	info := desc.GetWorkflowExecutionInfo()
	st.State = stateOf(info.GetStatus(), keyword(info.GetSearchAttributes().GetIndexedFields(), workflows.StageAttr.GetName()))
	st.Reason = "status query unavailable (no cloud worker running?): " + err.Error()
	return st, nil
}

// ReleaseSummary is one line of `release list`.
type ReleaseSummary struct {
	Model     modelfleet.ModelRef `json:"model"`
	State     string              `json:"state"`
	Workflow  string              `json:"workflowId"`
	StartedAt time.Time           `json:"startedAt"`
	ClosedAt  *time.Time          `json:"closedAt,omitempty"`
}

// ListReleases lists releases, newest first, from Temporal's visibility
// store, using the search attributes the release workflow maintains.
func ListReleases(ctx context.Context, c client.Client, model string, limit int) ([]ReleaseSummary, error) {
	query := fmt.Sprintf("WorkflowType = %q", workflows.ReleaseWorkflowName)
	if model != "" {
		if err := modelfleet.ValidateName("model name", model); err != nil {
			return nil, err
		}
		query += fmt.Sprintf(" AND %s = %q", workflows.ModelAttr.GetName(), model)
	}
	out := []ReleaseSummary{}
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token, PageSize: 100})
		if err != nil {
			return nil, fmt.Errorf("list releases: %w", err)
		}
		for _, info := range resp.GetExecutions() {
			f := info.GetSearchAttributes().GetIndexedFields()
			s := ReleaseSummary{
				Model:     modelfleet.ModelRef{Name: keyword(f, workflows.ModelAttr.GetName()), Version: keyword(f, workflows.VersionAttr.GetName())},
				State:     stateOf(info.GetStatus(), keyword(f, workflows.StageAttr.GetName())),
				Workflow:  info.GetExecution().GetWorkflowId(),
				StartedAt: info.GetStartTime().AsTime(),
			}
			if s.Model.Name == "" { // started before its first upsert: parse the ID
				if parts := strings.SplitN(s.Workflow, "/", 3); len(parts) == 3 {
					s.Model = modelfleet.ModelRef{Name: parts[1], Version: parts[2]}
				}
			}
			if ct := info.GetCloseTime(); ct != nil {
				t := ct.AsTime()
				s.ClosedAt = &t
			}
			out = append(out, s)
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

// stateOf maps a workflow's execution status (and, while it runs, the stage
// it last recorded) to a release state.
func stateOf(s enumspb.WorkflowExecutionStatus, stage string) string {
	// A release that ended as the operator asked (aborted, rolled back)
	// completes normally; its last recorded stage says how it ended.
	switch stage {
	case workflows.StateAborted, workflows.StateRolledBack, workflows.StateFailed:
		if s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return stage
		}
	}
	switch s {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		if stage == "" {
			return workflows.StatePending
		}
		return stage
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return workflows.StateSucceeded
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
		return workflows.StateFailed
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
