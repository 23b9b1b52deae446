package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"go.temporal.io/sdk/client"

	"github.com/modelfleet/modelfleet/events"
	"github.com/modelfleet/modelfleet/orchestrator"
)

// instantClient accepts every start at once: what remains is the gateway's
// own cost (HTTP on loopback, decoding, dispatch), machine load aside.
type instantClient struct{ client.Client }

type instantRun struct{ client.WorkflowRun }

func (instantRun) GetRunID() string { return "r" }

func (instantClient) ExecuteWorkflow(context.Context, client.StartWorkflowOptions, any, ...any) (client.WorkflowRun, error) {
	return instantRun{}, nil
}

// BenchmarkGatewayCost is one webhook delivery of one ModelRegistered
// event, POST to 200, with Temporal answering instantly.
func BenchmarkGatewayCost(b *testing.B) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := events.NewHandler(events.NewTemporalDispatcher(orchestrator.New(instantClient{}), quiet, nil), events.HandlerOptions{Logger: quiet})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	url := "http://" + l.Addr().String() + "/api/events"
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if err := post(ctx, hc, url, "bench-cost", event{id: "e", version: i}); err != nil {
			b.Fatal(err)
		}
	}
}
