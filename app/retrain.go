package app

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/orchestrator"
	"github.com/modelfleet/modelfleet/training"
)

// exampleTrainer retrains the example model with its own trainer, on the
// job contract's input and output folders.
const exampleTrainer = "go run ./examples/bearing-failure/train -data ${{inputs.data}} -out ${{outputs.model}}"

// devRetraining is the embedded stack's retraining: jobs run as local
// subprocesses under <data>/training/runs, on data under
// <data>/training/data. Policies come from <data>/training/policies.yaml
// when present; otherwise bearing-failure retrains locally with its
// example trainer. A finished local run signals its workflow at once, so
// the poll is only the fallback.
func devRetraining(dataDir string, c client.Client, log *slog.Logger) (*activities.Retraining, error) {
	root := filepath.Join(dataDir, "training")
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	local := &training.Local{Root: filepath.Join(root, "runs"), Dir: cwd, Logger: log.With("component", "training"),
		// The example trainer is `go run`: it needs the Go toolchain's
		// settings, and nothing else of the worker's environment.
		PassEnv: []string{"GOROOT", "GOPATH", "GOCACHE", "GOMODCACHE", "GOFLAGS", "GOPROXY", "GONOSUMDB", "GONOSUMCHECK", "GOSUMDB", "GOTOOLCHAIN", "CGO_ENABLED"}}
	o := orchestrator.New(c)
	local.OnExit = func(ref modelfleet.RunRef, st modelfleet.JobStatus) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rs := modelfleet.RunStatus{Model: ref.Model, RunID: ref.ID, Status: st.Status, EventID: "local/" + ref.ID + "/" + st.Status, Time: time.Now().UTC()}
		if err := o.SignalRunStatus(ctx, rs); err != nil {
			log.Warn("signal retraining run status; the poll will see it", "model", ref.Model, "run", ref.ID, "error", err)
		}
	}
	policies := modelfleet.TrainingPolicies{Models: map[string]modelfleet.TrainingPolicy{
		"bearing-failure": {Compute: modelfleet.ComputePolicy{Kind: modelfleet.ComputeLocal}, Command: exampleTrainer},
	}}
	if doc, err := os.ReadFile(filepath.Join(root, "policies.yaml")); err == nil {
		if policies, err = training.ParsePolicies(doc); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return &activities.Retraining{
		Policies: policies,
		Runners:  map[string]modelfleet.Trainer{modelfleet.ComputeLocal: local},
		DataDir:  filepath.Join(root, "data"),
	}, nil
}
