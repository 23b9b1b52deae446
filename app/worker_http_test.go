package app

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet/telemetry"
)

func TestWorkerHTTPServesMetricsAndReadiness(t *testing.T) {
	reg := telemetry.NewRegistry()
	mp, err := telemetry.NewMeterProvider(reg)
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Shutdown(context.Background())
	c, _ := mp.Meter("temporal-sdk-go").Int64Counter("temporal_workflow_task_queue_poll_succeed")
	c.Add(context.Background(), 3)
	var down error
	srv := httptest.NewServer(workerHTTP(reg, func(context.Context) error { return down }))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "temporal_workflow_task_queue_poll_succeed_total 3") || !strings.Contains(body, "process_cpu_seconds_total") {
		t.Errorf("/metrics = %d:\n%s\nwant the SDK's instruments beside the process's", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, "ready") {
		t.Errorf("/readyz with Temporal up = %d %s", code, body)
	}
	down = errors.New("connection refused")
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "connection refused") {
		t.Errorf("/readyz with Temporal down = %d %s, want 503 naming the cause", code, body)
	}
}
