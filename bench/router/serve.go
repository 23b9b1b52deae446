package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/edge"
	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/signals"
)

const (
	modelName = "bearing-failure"
	apiKey    = "bench-key-5f0c2a" // a benchmark fixture, not a secret
)

// example is the example model as the servers need it.
type example struct {
	format   string
	features []string
	artifact []byte
	sample   []byte
	baseline *signals.Baseline // the monitoring loop's bins, from validation.csv
}

// loadExample reads the example in dir with the model file model (relative
// to dir): its format is the card's for model.txt, else what its content is.
func loadExample(dir, model string) (*example, error) {
	var card struct {
		Format   string   `yaml:"format"`
		Features []string `yaml:"features"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "model.yaml"))
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(b, &card); err != nil {
		return nil, fmt.Errorf("parse model.yaml: %w", err)
	}
	ex := &example{format: card.Format, features: card.Features}
	if !filepath.IsAbs(model) {
		model = filepath.Join(dir, model)
	}
	if ex.artifact, err = os.ReadFile(model); err != nil {
		return nil, err
	}
	if filepath.Base(model) != "model.txt" {
		if ex.format, _ = inference.Detect(ex.artifact); ex.format == "" {
			return nil, fmt.Errorf("%s: not a model file the edge runtime recognises", model)
		}
	}
	if ex.sample, err = os.ReadFile(filepath.Join(dir, "sample.json")); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, "validation.csv"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ds, err := inference.ReadCSV(f, ex.features)
	if err != nil {
		return nil, err
	}
	if ex.baseline, err = signals.BuildBaseline(ds, 20); err != nil {
		return nil, err
	}
	return ex, nil
}

// runServer is a child process: it serves mode on addr and prints
// "listening <addr>" once it accepts connections.
func runServer(mode, addr, dir, model, data string) error {
	ex, err := loadExample(dir, model)
	if err != nil {
		return err
	}
	var h http.Handler
	switch mode {
	case "floor":
		h, err = floorHandler(ex)
	case "router":
		h, err = agentHandler(ex, data, true)
	case "agent":
		h, err = agentHandler(ex, data, false)
	default:
		err = fmt.Errorf("unknown mode %q: want floor, router or agent", mode)
	}
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// A profile of the server under load: BENCH_PPROF=127.0.0.1:6060 for
	// the router or agent, BENCH_PPROF_FLOOR=127.0.0.1:6061 for the floor,
	// then go tool pprof http://127.0.0.1:6060/debug/pprof/profile; compare
	// the two with go tool pprof -diff_base floor.prof router.prof.
	pprofEnv := "BENCH_PPROF"
	if mode == "floor" {
		pprofEnv = "BENCH_PPROF_FLOOR"
	}
	if a := os.Getenv(pprofEnv); a != "" {
		go func() { _ = http.ListenAndServe(a, nil) }()
	}
	fmt.Printf("listening %s\n", ln.Addr())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	return srv.Serve(ln)
}

// floorHandler is the least a server of this model can do per request.
func floorHandler(ex *example) (http.Handler, error) {
	m, err := inference.Load(ex.format, ex.artifact)
	if err != nil {
		return nil, err
	}
	type response struct {
		Model      string  `json:"model"`
		Version    string  `json:"version"`
		Prediction float64 `json:"prediction"`
		Label      int     `json:"label"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, edge.MaxScoreBody))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		x, err := inference.Vector(ex.features, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p, err := m.Predict(x)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		label := 0
		if p >= 0.5 {
			label = 1
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(response{modelName, "1", p, label})
	}), nil
}

// agentHandler is an edge agent, deployed through
// Agent.Deploy from memory. With ab it serves versions 1 and 2 at 90/10 and
// version 3 as a shadow (the same artifact under three versions: the
// routing is what is measured); otherwise version 1 alone. Either way an API
// key is required.
// dir is the agent's site directory, inside the bench's work directory:
// the bench kills the process and removes both.
func agentHandler(ex *example, dir string, ab bool) (http.Handler, error) {
	if dir == "" {
		return nil, fmt.Errorf("-data is required: the agent's site directory")
	}
	a, err := edge.Open(dir, edge.Config{
		SiteID:     "bench",
		Loader:     func(format string, data []byte) (edge.Scorer, error) { return inference.Load(format, data) },
		Vectorizer: inference.Vector,
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, err
	}
	if err := a.SetKeys(modelName, []string{apiKey}); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(ex.artifact)
	fetch := func(_ context.Context, w io.Writer) error { _, err := w.Write(ex.artifact); return err }
	ten := 10
	reqs := []edge.DeployRequest{{Model: modelfleet.ModelRef{Name: modelName, Version: "1"}}}
	if ab {
		reqs = append(reqs,
			edge.DeployRequest{Model: modelfleet.ModelRef{Name: modelName, Version: "2"}, Weight: &ten},
			edge.DeployRequest{Model: modelfleet.ModelRef{Name: modelName, Version: "3"}, Shadow: true})
	}
	// The monitoring loop, as the agent runs it: every request binned into
	// its version's window (the closed windows are dropped here).
	agg := signals.NewAggregator(signals.AggregatorOptions{Site: "bench", Emit: func(signals.Message) error { return nil }})
	for _, req := range reqs {
		req.Digest, req.Format, req.Features = "sha256:"+hex.EncodeToString(sum[:]), ex.format, ex.features
		if _, err := a.Deploy(context.Background(), req, fetch); err != nil {
			return nil, err
		}
		agg.SetBaseline(modelName, req.Model.Version, ex.features, ex.baseline)
	}
	a.Router().SetObserver(agg)
	go func() { _ = agg.Run(context.Background()) }()
	return a.Handler(), nil
}
