package activities

import (
	"io"
	"log/slog"
	"sync"
	"testing"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/modelfleet/modelfleet"
)

// In an activity environment ValidateModel heartbeats from its start, so
// that the workflow's short heartbeat timeout notices a worker that died
// mid-validation (keepAlive) rather than its ten-minute start-to-close.
func TestValidateModelHeartbeats(t *testing.T) {
	reg := &blobRegistry{blobs: map[string][]byte{}}
	srv := `{"name":"triton","model":"bearing","task":"binary","args":["--model-repository={model_dir}"]}`
	reg.m = modelfleet.Model{ModelRef: modelfleet.ModelRef{Name: "m", Version: "5"}, Format: modelfleet.FormatOIP,
		Digest: reg.add([]byte("a packed model directory")), ArtifactURL: "http://registry.invalid/a", Features: []string{"x", "y"},
		Properties: map[string]string{modelfleet.PropServer: srv}}
	a := &Cloud{Registry: reg}
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	var mu sync.Mutex
	var beats []string
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
		var d string
		_ = details.Get(&d)
		mu.Lock()
		beats = append(beats, d)
		mu.Unlock()
	})
	if _, err := env.ExecuteActivity(a.ValidateModel, reg.m.ModelRef); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(beats) == 0 || beats[0] != "started" {
		t.Errorf("heartbeats = %v, want one at the start", beats)
	}
}
