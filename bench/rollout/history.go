package main

import (
	"context"
	"fmt"
	"io"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// history is one workflow run's events, read back from the server: the
// source of the benchmark's history sizes, action counts and of the server
// timestamps its phase timings use.
type history struct {
	id, runID string
	events    []*historypb.HistoryEvent
}

func readHistory(ctx context.Context, c client.Client, id, runID string) (history, error) {
	h := history{id: id, runID: runID}
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return h, fmt.Errorf("history of %s: %w", id, err)
		}
		h.events = append(h.events, ev)
	}
	return h, nil
}

// allHistories reads every workflow run in the namespace: the dev server is
// fresh for each fleet size, so that is exactly what the run cost Temporal,
// continued-as-new runs and any workflow other than the releases included.
func allHistories(ctx context.Context, c client.Client) ([]history, error) {
	var out []history
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: 1000, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list workflows: %w", err)
		}
		for _, info := range resp.GetExecutions() {
			h, err := readHistory(ctx, c, info.GetExecution().GetWorkflowId(), info.GetExecution().GetRunId())
			if err != nil {
				return nil, err
			}
			out = append(out, h)
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return out, nil
		}
	}
}

// actions counts what Temporal Cloud bills as actions, as far as a history
// shows them: workflow starts, activity tasks scheduled and their retries,
// timers, signals received, search-attribute upserts, markers (side effects,
// versions, local activities), child-workflow and external-workflow
// commands, accepted updates and continue-as-new. Activity heartbeats and
// queries are billed too but leave no event: they are not counted.
func (h history) actions() int {
	n := 0
	for _, ev := range h.events {
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
			enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
			enumspb.EVENT_TYPE_TIMER_STARTED,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
			enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
			enumspb.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
			enumspb.EVENT_TYPE_MARKER_RECORDED,
			enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
			enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
			enumspb.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
			n++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			if a := ev.GetActivityTaskStartedEventAttributes().GetAttempt(); a > 1 {
				n += int(a) - 1
			}
		}
	}
	return n
}

func (h history) start() time.Time { return h.events[0].GetEventTime().AsTime() }
func (h history) end() time.Time   { return h.events[len(h.events)-1].GetEventTime().AsTime() }

// span is one activity as the history records it.
type span struct {
	name       string
	scheduled  time.Time
	closed     time.Time // zero while it runs
	outcome    string
	scheduleID int64
}

// activities lists the run's activities in the order they were scheduled.
func (h history) activities() []span {
	var out []span
	idx := map[int64]int{}
	for _, ev := range h.events {
		t := ev.GetEventTime().AsTime()
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			idx[ev.GetEventId()] = len(out)
			out = append(out, span{name: ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName(), scheduled: t, scheduleID: ev.GetEventId()})
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			out[idx[ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()]].close(t, "ok")
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
			out[idx[ev.GetActivityTaskFailedEventAttributes().GetScheduledEventId()]].close(t, "failed")
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
			out[idx[ev.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId()]].close(t, "timed out")
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
			out[idx[ev.GetActivityTaskCanceledEventAttributes().GetScheduledEventId()]].close(t, "canceled")
		}
	}
	return out
}

func (s *span) close(t time.Time, outcome string) { s.closed, s.outcome = t, outcome }

// breachAt is when the release learned of the breach: the completion of the
// last activity before its first RollbackSites or RollbackAndAwait (the
// AwaitConverged that found the failed sites). Zero if the run never
// rolled back.
func (h history) breachAt() time.Time {
	var last time.Time
	for _, s := range h.activities() {
		if s.name == "RollbackSites" || s.name == "RollbackAndAwait" {
			return last
		}
		if !s.closed.IsZero() {
			last = s.closed
		}
	}
	return time.Time{}
}

// signaledAt is when the named signal reached the run (zero if never).
func (h history) signaledAt(name string) time.Time {
	for _, ev := range h.events {
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == name {
			return ev.GetEventTime().AsTime()
		}
	}
	return time.Time{}
}

// printTimeline writes the run's activities relative to origin, so a reader
// sees where a release's seconds went: waiting for the sites (AwaitConverged),
// writing desired state (ApplyStep, RollbackSites), both (RollbackAndAwait)
// or the workflow itself (the gaps between them).
func (h history) printTimeline(w io.Writer, origin time.Time) {
	fmt.Fprintf(w, "    %8.3fs  workflow started (%s)\n", h.start().Sub(origin).Seconds(), h.id)
	for _, s := range h.activities() {
		d := "running"
		if !s.closed.IsZero() {
			d = fmt.Sprintf("%.3fs %s", s.closed.Sub(s.scheduled).Seconds(), s.outcome)
		}
		fmt.Fprintf(w, "    %8.3fs  %-16s %s\n", s.scheduled.Sub(origin).Seconds(), s.name, d)
	}
	fmt.Fprintf(w, "    %8.3fs  workflow closed: %s, %d events\n", h.end().Sub(origin).Seconds(),
		h.events[len(h.events)-1].GetEventType(), len(h.events))
}
