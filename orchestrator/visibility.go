package orchestrator

import (
	"fmt"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/converter"

	"github.com/modelfleet/modelfleet"
)

// This file reads what Temporal's visibility store and DescribeWorkflow
// answer: search attributes, execution statuses, workflow IDs.

// keyword decodes the Keyword search attribute name of a visibility record;
// "" when it is not set or not a string.
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

// releasesQuery is the visibility query for releases of model and
// workload versions, of one model if model is not "".
func releasesQuery(model string) string {
	query := fmt.Sprintf("(WorkflowType = %q OR WorkflowType = %q)", modelfleet.ReleaseWorkflowName, modelfleet.WorkloadReleaseWorkflowName)
	if model != "" {
		query += fmt.Sprintf(" AND %s = %q", ModelAttr.GetName(), model)
	}
	return query
}

// ChampionQuery is the visibility query for a model's succeeded releases.
func ChampionQuery(model string) string {
	return fmt.Sprintf("WorkflowType = %q AND %s = %q AND %s = %q AND ExecutionStatus = 'Completed'",
		modelfleet.ReleaseWorkflowName, ModelAttr.GetName(), model, StageAttr.GetName(), modelfleet.StateSucceeded)
}

// summarize reads a release's summary from its visibility record.
func summarize(info *workflowpb.WorkflowExecutionInfo) modelfleet.ReleaseSummary {
	f := info.GetSearchAttributes().GetIndexedFields()
	s := modelfleet.ReleaseSummary{
		Model:     modelfleet.ModelRef{Name: keyword(f, ModelAttr.GetName()), Version: keyword(f, VersionAttr.GetName())},
		State:     stateOf(info.GetStatus(), keyword(f, StageAttr.GetName())),
		Workflow:  info.GetExecution().GetWorkflowId(),
		StartedAt: info.GetStartTime().AsTime(),
	}
	if w := keyword(f, WorkloadAttr.GetName()); w != "" {
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
