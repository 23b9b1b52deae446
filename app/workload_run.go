package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelfleet/modelfleet"
	bearing "github.com/modelfleet/modelfleet/examples/bearing-failure/workload"
	"github.com/modelfleet/modelfleet/workload"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// builtinWorkloads is the feature code compiled into this binary: a
// manifest is run only with the code written for it.
func builtinWorkloads() []workload.Code { return []workload.Code{bearing.Code()} }

// WorkloadRun configures one standalone workload process.
type WorkloadRun struct {
	Site     string
	Manifest string // path of workload.yaml
	Broker   string // mqtt://host:port
	Router   string // http://agent:port
	KeyFile  string // the router API key; optional, never logged
	Listen   string // health, decisions and metrics
	DataDir  string // the bounded local record of decisions
	Logger   *slog.Logger
	Codes    []workload.Code

	// onListen, when set, is told the bound address (tests listen on :0).
	onListen func(net.Addr)
	// supervisor tunes the supervisor (tests shorten its timers).
	supervisor func(*workload.SupervisorConfig)
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

// Run checks the configuration, then supervises the workload until ctx
// ends and drains it.
func (r WorkloadRun) Run(ctx context.Context) error {
	if r.Site == "" {
		return errors.New("--site is required")
	}
	if err := modelfleet.ValidateName("site id", r.Site); err != nil {
		return err
	}
	if r.Manifest == "" {
		return errors.New("--manifest is required")
	}
	doc, err := os.ReadFile(r.Manifest)
	if err != nil {
		return err
	}
	if r.Codes == nil {
		r.Codes = builtinWorkloads()
	}
	prog, err := workloadProgram(doc, r.Codes)
	if err != nil {
		return fmt.Errorf("%s: %w", r.Manifest, err)
	}
	key, err := readKey(r.KeyFile)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(r.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	scfg := workload.SupervisorConfig{Site: r.Site, Broker: r.Broker, Router: r.Router, APIKey: key, Logger: log}
	if r.supervisor != nil {
		r.supervisor(&scfg)
	}
	sup := workload.NewSupervisor(scfg)
	recPath := filepath.Join(r.DataDir, recordFile)
	sup.Record = loadRecord(recPath, prog.Manifest.Output.Record, log)

	ln, err := net.Listen("tcp", r.Listen)
	if err != nil {
		return fmt.Errorf("workload listen %s: %w", r.Listen, err)
	}
	srv := &http.Server{Handler: sup.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("workload: health server stopped", "error", err)
		}
	}()
	if r.onListen != nil {
		r.onListen(ln.Addr())
	}
	log.Info("workload: starting", "workload", prog.Manifest.Ref(), "site", r.Site, "broker", r.Broker,
		"router", r.Router, "router_key", key != "", "listen", ln.Addr().String(), "data_dir", r.DataDir)

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
				if err := saveRecord(recPath, sup.Record); err != nil {
					log.Warn("workload: saving the record of decisions failed", "error", err)
				}
			}
		}
	}()

	runErr := sup.Run(ctx, prog) // drains the running version when ctx ends
	stopSaving()
	<-saved
	if err := saveRecord(recPath, sup.Record); err != nil {
		log.Warn("workload: saving the record of decisions failed", "error", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if runErr != nil {
		return runErr
	}
	log.Info("workload: stopped", "workload", prog.Manifest.Ref())
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
