package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/events"
	"github.com/modelfleet/modelfleet/orchestrator"
	"github.com/modelfleet/modelfleet/workflows"
)

// The drift path on a real Temporal server: signal-with-start coalesces
// drift into one retraining, a redelivered event has no effect, the job's
// run status ends the cycle, and a status for a closed workflow is
// acknowledged.
func TestRetrainOnRealTemporal(t *testing.T) {
	bin := os.Getenv("MODELFLEET_TEMPORAL_BIN")
	if bin == "" {
		bin = "../../bin/tools/temporal"
	}
	if _, err := os.Stat(bin); err != nil || testing.Short() {
		t.Skip("needs the Temporal CLI (make tools) and no -short")
	}
	ctx := context.Background()
	srv, err := startDevServer(ctx, bin, t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	c, err := client.DialContext(ctx, client.Options{HostPort: srv.addr, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := worker.New(c, modelfleet.CloudTaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.Retrain, workflow.RegisterOptions{Name: modelfleet.RetrainWorkflowName})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := events.NewTemporalDispatcher(orchestrator.New(c), quiet, nil)
	d.Retrain = modelfleet.RetrainInput{Debounce: 2 * time.Second, Cooldown: time.Second, IdleTimeout: 4 * time.Second, JobTimeout: time.Minute}
	gw := httptest.NewServer(events.NewHandler(d, events.HandlerOptions{Logger: quiet}))
	defer gw.Close()

	model := fmt.Sprintf("bench-retrain-%d", time.Now().UnixNano()%1e9)
	id := modelfleet.RetrainWorkflowID(model)
	drift := func(eventID string) string {
		return fmt.Sprintf(`[{"id":%q,"eventType":%q,"subject":"datadrifts/d/runs/r","eventTime":"2026-03-02T09:00:00Z",`+
			`"data":{"dataDriftId":"d","dataDriftName":"%s--weekly","driftCoefficient":0.7}}]`, eventID, modelfleet.EventDatasetDriftDetected, model)
	}
	for _, ev := range []string{"e1", "e2", "e1", "e3"} { // e1 redelivered
		postOK(t, gw.URL, drift(ev))
	}
	st := waitStage(t, c, id, modelfleet.RetrainWaiting)
	if st.TriggersTotal != 3 || st.Duplicates != 1 || st.Current == nil || st.Current.Triggers != 3 {
		t.Errorf("status = %+v, want 3 triggers in one cycle and 1 duplicate", st)
	}
	done := fmt.Sprintf(`[{"id":"r1","eventType":%q,"subject":"experiments/x/runs/job-1","eventTime":"2026-03-02T11:00:00Z",`+
		`"data":{"runId":"job-1","runTags":{"modelfleet.retrain":%q}}}]`, modelfleet.EventRunCompleted, model)
	postOK(t, gw.URL, done)
	var final workflows.RetrainStatus
	if err := c.GetWorkflow(ctx, id, "").Get(ctx, &final); err != nil {
		t.Fatal(err)
	}
	if len(final.Cycles) != 1 || final.Cycles[0].Result != "completed" || final.Cycles[0].RunID != "job-1" {
		t.Errorf("cycles = %+v, want job-1 completed", final.Cycles)
	}
	// Closed now: a late status has nobody to tell, and is acknowledged.
	postOK(t, gw.URL, strings.Replace(done, `"id":"r1"`, `"id":"r2"`, 1))
}

func postOK(t *testing.T, url, body string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status = %d (%s)", resp.StatusCode, b)
	}
}

func waitStage(t *testing.T, c client.Client, id, stage string) workflows.RetrainStatus {
	t.Helper()
	var st workflows.RetrainStatus
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		v, err := c.QueryWorkflow(context.Background(), id, "", modelfleet.StatusQuery)
		if err == nil && v.Get(&st) == nil && st.Stage == stage {
			return st
		}
	}
	t.Fatalf("stage %q not reached; last status %+v", stage, st)
	return st
}
