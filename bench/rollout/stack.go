package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/agent"
	"github.com/modelfleet/modelfleet/app"
	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/bench/internal/agents"
	"github.com/modelfleet/modelfleet/registry"
	"github.com/modelfleet/modelfleet/workers"
)

// stack is one fleet size's embedded control plane and its simulated sites,
// wired as app/dev.go wires `modelfleet dev`, but with free ports, a temp
// data dir and thousands of sites.
type stack struct {
	log      *slog.Logger
	temporal *app.TemporalServer
	client   client.Client
	gateway  *app.Gateway   // the first replica: the registry's webhook and the worker use it
	gateways []*app.Gateway // every replica; the agents are spread over them
	registry *registry.Registry
	regURL   string
	blobs    *blobGate
	worker   worker.Worker
	edges    []*agent.Site
	meter    *meter
	tr       *http.Transport
	trust    *modelfleet.Trust // release keys the sites pin; nil: plain

	closers []func()
}

type stackConfig struct {
	dir       string
	sitesDir  string // parent of each site's own data dir
	sites     int
	pipes     bool
	heartbeat time.Duration
	temporal  string
	log       *slog.Logger
	store     string // PostgreSQL DSN; "" for bbolt (one replica)
	replicas  int    // gateway replicas on store (default 1)
	variant   variant
}

// variant is how much trust the stack runs with (overhead.go compares
// them): plain (no authentication, unsigned versions), signed (the worker
// signs each validated version, every site verifies before it loads), or
// secure (signed, plus what `make run` runs: sites enrolled with their own
// certificates over mTLS, the worker with an OIDC token).
type variant string

const (
	plain  variant = "plain"
	signed variant = "signed"
	secure variant = "secure"
)

// startStack starts everything but the sites' agents, then opens the
// agents, registers them in the directory and runs them. Close undoes it
// all, also after a failed start.
func startStack(ctx context.Context, cfg stackConfig) (s *stack, err error) {
	s = &stack{log: cfg.log}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	ports, err := freePorts(2)
	if err != nil {
		return s, fmt.Errorf("ports for the Temporal dev server: %w", err)
	}
	port, uiPort := ports[0], ports[1]
	s.temporal, err = app.StartTemporal(ctx, app.TemporalOptions{
		Binary: cfg.temporal, DataDir: filepath.Join(cfg.dir, "temporal"),
		Port: port, UIPort: uiPort, Logger: cfg.log,
	})
	if err != nil {
		return s, err
	}
	s.closers = append(s.closers, func() { s.temporal.Close() })
	if s.client, err = workers.Dial(ctx, s.temporal.Address, workers.DefaultNamespace, cfg.log); err != nil {
		return s, err
	}
	s.closers = append(s.closers, s.client.Close)

	var gwAuth *app.AuthConfig
	if cfg.variant == secure {
		if cfg.pipes || cfg.replicas > 1 {
			return s, errors.New("the secure variant runs over TCP with one gateway")
		}
		gwAuth = &app.AuthConfig{DevIssuer: true, CredentialsDir: filepath.Join(cfg.dir, "credentials")}
	}
	for i := range max(cfg.replicas, 1) {
		gw, err := app.OpenGateway(app.GatewayConfig{Addr: "127.0.0.1:0", DataDir: filepath.Join(cfg.dir, "gateway", strconv.Itoa(i)), Temporal: s.client, Logger: cfg.log, Store: cfg.store, Auth: gwAuth})
		if err != nil {
			return s, err
		}
		s.closers = append(s.closers, func() { gw.Close() })
		s.gateways = append(s.gateways, gw)
	}
	s.gateway = s.gateways[0]

	// The fleet's transport, installed before anything uses
	// http.DefaultClient. In pipe mode the directory (everything the agents
	// and the cloud worker ask of the gateway) is served in memory too; the
	// registry's webhook keeps its own plain TCP client, so the Event Grid
	// delivery still reaches the real gateway listener.
	fab := &fabric{}
	s.tr = newTransport(fab, cfg.sites)
	s.meter = &meter{next: s.tr}
	installHostMux()
	for _, gw := range s.gateways {
		s.route(hostOf(gw.URL()))
	}
	if cfg.pipes {
		for _, gw := range s.gateways {
			s.serve(fab.route(hostOf(gw.URL())), gw.Directory.Handler())
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return s, err
	}
	s.regURL = "http://" + ln.Addr().String()
	s.route(hostOf(s.regURL))
	webhook := &http.Client{Transport: &http.Transport{}}
	if cfg.variant == secure {
		if webhook, err = auth.Client(s.gateway.CABundle(), nil); err != nil {
			ln.Close()
			return s, err
		}
	}
	webhook.Timeout = 30 * time.Second
	s.registry, err = registry.Open(filepath.Join(cfg.dir, "registry"), registry.Options{
		WebhookURL: s.gateway.URL() + "/api/events",
		PublicURL:  s.regURL,
		Logger:     cfg.log,
		HTTPClient: webhook,
	})
	if err != nil {
		ln.Close()
		return s, err
	}
	s.closers = append(s.closers, func() { s.registry.Close() })
	s.blobs = &blobGate{next: s.registry.Handler()}
	s.serve(ln, s.blobs)
	if cfg.pipes {
		s.serve(fab.route(hostOf(s.regURL)), s.blobs)
	}

	wcfg := app.WorkerConfig{Temporal: s.client, RegistryURL: s.regURL, GatewayURL: s.gateway.URL(), Logger: cfg.log}
	switch cfg.variant {
	case signed:
		keys, err := app.OpenReleaseKeys(filepath.Join(cfg.dir, "release-keys"), true)
		if err != nil {
			return s, err
		}
		wcfg.ReleaseSigner = keys
		s.trust = keys.Trust()
	case secure:
		if wcfg.GatewayClient, err = s.gateway.Client("worker.token"); err != nil {
			return s, err
		}
		keys, ok := s.gateway.ReleaseSigner().(*app.ReleaseKeys)
		if !ok {
			return s, errors.New("the secure gateway has no release keys")
		}
		wcfg.ReleaseSigner = keys
		s.trust = keys.Trust()
	}
	if s.worker, err = app.StartCloudWorker(wcfg); err != nil {
		return s, err
	}
	s.closers = append(s.closers, s.worker.Stop)
	return s, s.startSites(ctx, cfg, fab)
}

// pinTrust writes the release keys every site of a signed or secure stack
// pins (as enrolment or `modelfleet keys export` would give them) and
// returns the file's path, "" for a plain stack.
func (s *stack) pinTrust(dir string) (string, error) {
	if s.trust == nil {
		return "", nil
	}
	b, err := json.Marshal(s.trust)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "release-keys.json")
	return p, os.WriteFile(p, b, 0o644)
}

// enrol gives a secure stack's site its identity over the gateway's real
// enrolment API (join token, CSR, certificate), as `modelfleet edge
// --join-token` does, and returns the metered mTLS client the site then
// reaches the gateway with; nil for the other variants.
func (s *stack) enrol(ctx context.Context, cfg stackConfig, fab *fabric, id, dataDir string, labels map[string]string) (*http.Client, error) {
	if cfg.variant != secure {
		return nil, nil
	}
	tok, err := s.gateway.JoinToken(id, labels, "bench-rollout")
	if err != nil {
		return nil, err
	}
	ident, err := agent.Enroll(ctx, s.gateway.URL(), tok, filepath.Join(dataDir, "identity"))
	if err != nil {
		return nil, fmt.Errorf("enrol %s: %w", id, err)
	}
	t, err := ident.Transport()
	if err != nil {
		return nil, err
	}
	t.DialContext = fab.dial
	t.MaxIdleConnsPerHost = 8
	t.DisableCompression = true
	return &http.Client{Transport: s.meter.via(t)}, nil
}

// startSites opens every site's agent (store, router listening on its own
// port), registers the site in the directory with its wave label, as an
// operator would, and runs the agents: no Temporal worker, only the pull
// loop and the heartbeat, as releases use them.
func (s *stack) startSites(ctx context.Context, cfg stackConfig, fab *fabric) error {
	trustFile, err := s.pinTrust(cfg.dir)
	if err != nil {
		return err
	}
	edges, err := agents.Open(cfg.sites, func(i int) (*agent.Site, error) {
		id := siteID(i)
		dataDir := filepath.Join(cfg.sitesDir, id)
		labels := map[string]string{"ring": ring(i, cfg.sites)}
		gw, err := s.enrol(ctx, cfg, fab, id, dataDir, labels)
		if err != nil {
			return nil, err
		}
		e, err := agent.Open(agent.Config{
			SiteID:            id,
			DataDir:           dataDir,
			Listen:            "127.0.0.1:0",
			GatewayURL:        s.gateways[i%len(s.gateways)].URL(),
			GatewayClient:     gw,
			ReleaseKeysFile:   trustFile,
			Labels:            labels,
			HeartbeatInterval: cfg.heartbeat,
			NoSignals:         true,
			Logger:            cfg.log,
		})
		if err != nil {
			return nil, err
		}
		if _, err := s.gateway.Directory.Put(e.Record()); err != nil {
			e.Edge.Close()
			return nil, err
		}
		return e, nil
	})
	if err != nil {
		return err
	}
	s.edges = edges
	s.closers = append(s.closers, agents.Run(edges))
	return nil
}

// waitIdle waits until every agent has registered and reported its (empty)
// actual state, then, briefly, until they are all long-polling, so the
// release starts on a quiet fleet instead of competing with its start-up.
// A directory too slow for the fleet's heartbeats never gets quiet: that is
// reported, and the release starts anyway.
func (s *stack) waitIdle(ctx context.Context, timeout, settle time.Duration) (string, error) {
	n := int64(len(s.edges))
	deadline := time.Now().Add(timeout)
	for {
		c := s.meter.snapshot()
		if c.reports >= n { // an agent's report is its heartbeat
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("fleet not up after %s: %d/%d reports", timeout, c.reports, n)
		}
		if err := modelfleet.Sleep(ctx, 100*time.Millisecond); err != nil {
			return "", err
		}
	}
	deadline = time.Now().Add(settle)
	for {
		open := s.meter.pollsOpen.Load()
		if open >= n-n/100 {
			return fmt.Sprintf("%d long polls open", open), nil
		}
		if time.Now().After(deadline) {
			return fmt.Sprintf("only %d of %d agents long-polling after %s more: the rest wait on their reports or heartbeats (directory saturated)", open, n, settle), nil
		}
		if err := modelfleet.Sleep(ctx, 100*time.Millisecond); err != nil {
			return "", err
		}
	}
}

func (s *stack) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("bench http server stopped", "addr", ln.Addr().String(), "error", err)
		}
	}()
	s.closers = append(s.closers, func() { srv.Close() })
}

// Close stops everything in reverse order and removes nothing: the caller
// owns the data dir.
func (s *stack) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
	if s.tr != nil {
		s.tr.CloseIdleConnections()
	}
}

// blobGate stands in front of the registry's HTTP API and can make one
// artifact unavailable (HTTP 500), which is how the benchmark breaks a wave:
// the registry, not the sites, is what it controls from outside.
type blobGate struct {
	next    http.Handler
	blocked atomic.Pointer[string] // hex digest refused, nil for none
}

func (g *blobGate) block(digest string) {
	hex := strings.TrimPrefix(digest, "sha256:")
	g.blocked.Store(&hex)
}

func (g *blobGate) unblock() { g.blocked.Store(nil) }

func (g *blobGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if hex := g.blocked.Load(); hex != nil && strings.HasPrefix(r.URL.Path, "/api/blobs/") && strings.Contains(r.URL.Path, *hex) {
		http.Error(w, `{"error":"internal","message":"blob unavailable (benchmark breach)"}`, http.StatusInternalServerError)
		return
	}
	g.next.ServeHTTP(w, r)
}

// freePorts finds n distinct free ports for the Temporal dev server below
// the kernel's ephemeral range (32768 and up), so that no connection or
// port-0 listener of this or another process takes one between this check
// and the server binding it. (A dev server that fails to bind hangs
// app.StartTemporal rather than failing it.)
func freePorts(n int) ([]int, error) {
	var ports []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for try := 0; len(ports) < n && try < 200; try++ {
		p := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		held = append(held, ln)
		ports = append(ports, p)
	}
	if len(ports) < n {
		return nil, errors.New("no free port between 20000 and 32000")
	}
	return ports, nil
}

func hostOf(url string) string {
	return strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")
}

// siteID pads the index so the directory's ID order is the creation order.
func siteID(i int) string { return fmt.Sprintf("site-%05d", i+1) }

// The four rings the benchmark's waves select: 1% canary, 10% r1, 30% r2
// and the rest, in site order.
var rings = []struct {
	name  string
	share float64
}{{"canary", 0.01}, {"r1", 0.10}, {"r2", 0.30}, {"main", 1}}

func ring(i, n int) string {
	bound := 0.0
	for _, r := range rings {
		bound += r.share * float64(n)
		if float64(i) < bound || r.share == 1 {
			return r.name
		}
	}
	return rings[len(rings)-1].name
}

// ringSizes counts the sites of each ring, in wave order.
func ringSizes(n int) []int {
	sizes := make([]int, len(rings))
	for i := range n {
		r := ring(i, n)
		for j := range rings {
			if rings[j].name == r {
				sizes[j]++
			}
		}
	}
	return sizes
}
