package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelfleet/modelfleet"
	bearing "github.com/modelfleet/modelfleet/examples/bearing-failure/workload"
	"github.com/modelfleet/modelfleet/httpjson"
	"github.com/modelfleet/modelfleet/workload"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// BuiltinWorkloads is the feature code compiled into this binary: a
// manifest is run only with the code written for it.
func BuiltinWorkloads() []workload.Code { return []workload.Code{bearing.Code()} }

// WorkloadRunnerConfig configures one site's workload run as a process of
// its own (`modelfleet workload run`, the Deployment the gitops driver
// renders) rather than inside the site's agent.
type WorkloadRunnerConfig struct {
	Site     string
	Manifest string // path of workload.yaml
	// Module is the path of the WebAssembly module a manifest with a
	// module: names (checked against its digest); "" for a manifest
	// paired with built-in code.
	Module  string
	Broker  string // mqtt://host:port
	Router  string // the site's inference router, http://agent:port
	KeyFile string // the router API key; optional, never logged
	Listen  string // health, decisions and metrics
	DataDir string // the bounded local record of decisions (required)
	Logger  *slog.Logger
	Codes   []workload.Code // the code manifests pair with (default BuiltinWorkloads)
}

// WorkloadRunner is a standalone workload, checked and listening, ready to
// Run.
type WorkloadRunner struct {
	cfg     WorkloadRunnerConfig
	prog    workload.Program
	modules *workload.Modules // nil for built-in code
	sup     *workload.Supervisor
	srv     *httpjson.Server
	recPath string
	keyed   bool
	log     *slog.Logger
}

// recordFile is where the bounded record of decisions survives a restart.
const recordFile = "decisions.json"

// workloadProgram pairs a manifest with the code written for it.
func workloadProgram(doc []byte, codes []workload.Code) (workload.Program, error) {
	m, err := spec.ParseManifest(doc)
	if err != nil {
		return workload.Program{}, err
	}
	names := make([]string, 0, len(codes))
	for _, c := range codes {
		if c.Name == m.Name {
			return c.Program(m)
		}
		names = append(names, c.Name)
	}
	return workload.Program{}, modelfleet.Errorf(modelfleet.EINVALID,
		"workload %s: this binary has no code for workload %q (it has code for %q); build it with that workload's code", m.Ref(), m.Name, names)
}

// readKey reads the router API key; the error never contains it.
func readKey(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("router key: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("router key file %s is empty", path)
	}
	return key, nil
}

// OpenWorkloadRunner pairs the manifest with the code written for it,
// reads the router key, restores the record of decisions and binds the
// listener: a manifest the code cannot serve is refused here, with the
// reason, before anything connects.
func OpenWorkloadRunner(cfg WorkloadRunnerConfig) (*WorkloadRunner, error) {
	if err := modelfleet.ValidateName("site id", cfg.Site); err != nil {
		return nil, err
	}
	if cfg.Manifest == "" {
		return nil, errors.New("workload runner: no manifest")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("workload runner: no data directory")
	}
	doc, err := os.ReadFile(cfg.Manifest)
	if err != nil {
		return nil, err
	}
	if cfg.Codes == nil {
		cfg.Codes = BuiltinWorkloads()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	prog, modules, err := runnerProgram(doc, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Manifest, err)
	}
	key, err := readKey(cfg.KeyFile)
	if err != nil {
		if modules != nil {
			modules.Close()
		}
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sup := workload.NewSupervisor(workload.SupervisorConfig{Site: cfg.Site, Broker: cfg.Broker, Router: cfg.Router, APIKey: key, Logger: log})
	recPath := filepath.Join(cfg.DataDir, recordFile)
	sup.Record = loadRecord(recPath, prog.Manifest.Output.Record, log)
	srv, err := httpjson.Listen(cfg.Listen, sup.Handler())
	if err != nil {
		if modules != nil {
			modules.Close()
		}
		return nil, fmt.Errorf("workload listen %s: %w", cfg.Listen, err)
	}
	return &WorkloadRunner{cfg: cfg, prog: prog, modules: modules, sup: sup, srv: srv, recPath: recPath, keyed: key != "", log: log}, nil
}

// runnerProgram is the workload version a runner runs: a manifest naming
// a module runs the module file given (cfg.Module, which must hash to the
// manifest's module.digest; it is kept in the data directory's module
// cache and compiled once); any other manifest is paired with built-in
// code.
func runnerProgram(doc []byte, cfg WorkloadRunnerConfig) (workload.Program, *workload.Modules, error) {
	m, err := spec.ParseManifest(doc)
	if err != nil {
		return workload.Program{}, nil, err
	}
	switch {
	case m.Image != "":
		return workload.Program{}, nil, modelfleet.Errorf(modelfleet.EINVALID, "workload %s is the container image %s: run that image, not modelfleet workload run", m.Ref(), m.Image)
	case m.Module == nil && cfg.Module != "":
		return workload.Program{}, nil, modelfleet.Errorf(modelfleet.EINVALID, "workload %s names no module, but --module %s was given: register the manifest with its module (modelfleet workload register --module)", m.Ref(), cfg.Module)
	case m.Module == nil:
		prog, err := workloadProgram(doc, cfg.Codes)
		return prog, nil, err
	case cfg.Module == "":
		return workload.Program{}, nil, modelfleet.Errorf(modelfleet.EINVALID, "workload %s runs module %s: give its file with --module ($MODELFLEET_WORKLOAD_MODULE)", m.Ref(), m.Module.Digest)
	}
	file := cfg.Module
	fetch := func(_ context.Context, digest string, w io.Writer) error {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(f, spec.MaxModuleBytes+1)); err != nil {
			return err
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
			return modelfleet.Errorf(modelfleet.EINVALID, "module file %s is %s, but workload %s names module %s", file, got, m.Ref(), digest)
		}
		return nil
	}
	ms, err := workload.OpenModules(filepath.Join(cfg.DataDir, "modules"), fetch)
	if err != nil {
		return workload.Program{}, nil, err
	}
	prog, err := ms.Program(context.Background(), m)
	if err != nil {
		ms.Close()
		return workload.Program{}, nil, err
	}
	return prog, ms, nil
}

// URL is where the runner serves GET /healthz, /decisions and /metrics.
func (r *WorkloadRunner) URL() string { return r.srv.URL() }

// Run serves health, decisions and metrics and supervises the workload
// until ctx ends, then drains it, saves the record of decisions and stops
// serving.
func (r *WorkloadRunner) Run(ctx context.Context) error {
	log := r.log
	r.srv.Start(log, "workload")
	log.Info("workload: starting", "workload", r.prog.Manifest.Ref(), "site", r.cfg.Site, "broker", r.cfg.Broker,
		"router", r.cfg.Router, "router_key", r.keyed, "listen", r.srv.Addr(), "data_dir", r.cfg.DataDir)

	// Save the record now and then, so a crash loses little of it.
	saveCtx, stopSaving := context.WithCancel(context.Background())
	saved := make(chan struct{})
	go func() {
		defer close(saved)
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-saveCtx.Done():
				return
			case <-t.C:
				if err := saveRecord(r.recPath, r.sup.Record); err != nil {
					log.Warn("workload: saving the record of decisions failed", "error", err)
				}
			}
		}
	}()

	runErr := r.sup.Run(ctx, r.prog) // drains the running version when ctx ends
	stopSaving()
	<-saved
	if err := saveRecord(r.recPath, r.sup.Record); err != nil {
		log.Warn("workload: saving the record of decisions failed", "error", err)
	}
	r.srv.Close()
	if r.modules != nil {
		r.modules.Close()
	}
	if runErr != nil {
		return runErr
	}
	log.Info("workload: stopped", "workload", r.prog.Manifest.Ref())
	return nil
}

// loadRecord restores the record of decisions kept in path, up to n of the
// newest; a missing or unreadable file starts an empty one.
func loadRecord(path string, n int, log *slog.Logger) *workload.Record {
	rec := workload.NewRecord(n)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return rec
	}
	var ds []workload.Decision // newest first
	if err == nil {
		err = json.Unmarshal(b, &ds)
	}
	if err != nil {
		log.Warn("workload: the record of decisions is unreadable; starting a new one", "path", path, "error", err)
		return rec
	}
	if n > 0 && len(ds) > n {
		ds = ds[:n]
	}
	for i := len(ds) - 1; i >= 0; i-- {
		rec.Add(ds[i])
	}
	return rec
}

// saveRecord writes the record atomically (a crash leaves the old file).
func saveRecord(path string, rec *workload.Record) error {
	b, err := json.Marshal(rec.Recent(0))
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
