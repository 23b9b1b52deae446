package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/agent"
	"github.com/modelfleet/modelfleet/edge"
	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/workload"
	"github.com/modelfleet/modelfleet/workload/spec"
)

const (
	modelName = "bearing-failure"
	apiKey    = "bench-key-3b91d0" // a benchmark fixture, not a secret
)

// env is the site under test: broker, edge agent with the model, and the
// same model loaded in-process for the floor.
type env struct {
	dir      string
	broker   *workload.Broker
	site     *agent.Site
	stopEdge context.CancelFunc
	edgeDone chan error
	model    *inference.Model
	features []string
}

func setup(example string) (*env, error) {
	var card struct {
		Format   string   `yaml:"format"`
		Features []string `yaml:"features"`
	}
	data, err := os.ReadFile(filepath.Join(example, "model.yaml"))
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(data, &card); err != nil {
		return nil, fmt.Errorf("model.yaml: %w", err)
	}
	artifact, err := os.ReadFile(filepath.Join(example, "model.txt"))
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench-workload-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir, features: card.Features}
	quiet := slog.New(slog.DiscardHandler)
	if e.broker, err = workload.StartBroker(workload.BrokerConfig{Addr: "127.0.0.1:0", Logger: quiet}); err != nil {
		e.close()
		return nil, err
	}
	// The site's agent as the dev stack builds it: store and router, no
	// gateway (nothing to converge with).
	if e.site, err = agent.Open(agent.Config{SiteID: "site-1", DataDir: filepath.Join(dir, "site-1"),
		Listen: "127.0.0.1:0", Logger: quiet}); err != nil {
		e.close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.stopEdge, e.edgeDone = cancel, make(chan error, 1)
	go func() { e.edgeDone <- e.site.Run(ctx) }()

	sum := sha256.Sum256(artifact)
	req := edge.DeployRequest{Model: modelfleet.ModelRef{Name: modelName, Version: "1"}, Digest: "sha256:" + hex.EncodeToString(sum[:]),
		Format: card.Format, Features: card.Features}
	fetch := func(_ context.Context, w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader(artifact))
		return err
	}
	if _, err := e.site.Edge.Deploy(context.Background(), req, fetch); err != nil {
		e.close()
		return nil, err
	}
	if err := e.site.Edge.SetKeys(modelName, []string{apiKey}); err != nil {
		e.close()
		return nil, err
	}
	if e.model, err = inference.Load(card.Format, artifact); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *env) routerURL() string { return e.site.Record().RouterURL }

// routerScorer calls the site's router with the model's key, as the
// workload does in the stack.
func (e *env) routerScorer() workload.Scorer {
	return workload.NewRouterScorer(e.routerURL(), apiKey, spec.DefaultWorkers)
}

// directScorer calls the same model in-process: the floor.
func (e *env) directScorer() workload.Scorer {
	return workload.ScoreFunc(func(_ context.Context, model, _ string, _ []string, row []float64) (workload.Prediction, error) {
		p, err := e.model.Predict(row)
		if err != nil {
			return workload.Prediction{}, err
		}
		label := 0
		if p >= 0.5 {
			label = 1
		}
		return workload.Prediction{Model: model, Version: "1", Value: p, Label: label}, nil
	})
}

func (e *env) close() {
	if e.stopEdge != nil {
		e.stopEdge()
		<-e.edgeDone
		e.site.Edge.Close()
	}
	if e.broker != nil {
		e.broker.Close()
	}
	os.RemoveAll(e.dir)
}
