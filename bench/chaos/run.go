package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/app"
	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/events"
	"github.com/modelfleet/modelfleet/orchestrator"
	"github.com/modelfleet/modelfleet/queue"
	"github.com/modelfleet/modelfleet/registry"
	"github.com/modelfleet/modelfleet/workers"
)

// policy: a canary wave and the rest, each in two steps with a bake, and a
// human gate after the canary: gated, baked, multi-wave, as the issue asks.
// No criteria: an agent killed mid-bake restarts its counters, and what is
// measured here is that the release machinery stays right, not a verdict.
const policy = `apiVersion: modelfleet/v1
waves:
  - {name: canary, select: {ring: canary}, steps: [50, 100], bake: 2s}
  - {name: fleet, steps: [50, 100], bake: 2s, failureBudget: "100%"}
approval: {after: [canary], timeout: 1h, onTimeout: abort}
`

// chaos is one run: the processes, the registry, the observer.
type chaos struct {
	o        options
	out      io.Writer
	log      *slog.Logger
	dir      string
	rng      *rand.Rand
	temporal struct {
		sync.Mutex
		srv  *app.TemporalServer
		opts app.TemporalOptions
	}
	tc       client.Client
	trust    *trust       // nil without -auth
	disk     *diskFault   // nil without -disk-full
	wl       *workloads   // nil without -workloads
	gw       *http.Client // the harness's reads of the gateway (a viewer's, with -auth)
	manager  *http.Client // policies (a release manager's, with -auth)
	registry *registry.Registry
	gateways []*proc // one, or the replicas behind the balancer
	balancer *balancer
	worker   *proc
	sites    []*site
	// fleet hosts the agents of fleetSites (-fleet-sites; fleet.go).
	fleet      *proc
	fleetSites []*site
	obs        *observer
	gwURL      string
	artifact   []byte
	valData    []byte
	card       app.ModelCard

	temporalKills atomic.Int64
	approvals     atomic.Int64 // gates opened
	enrolments    atomic.Int64 // sites enrolled with a join token
	storeRestarts atomic.Int64
	offline       atomic.Int64
	corruptions   atomic.Int64
	recoveryMu    sync.Mutex
	maxRecovery   time.Duration
	unrecovered   atomic.Int64
}

func run(ctx context.Context, o options, out io.Writer) (report, error) {
	var r report
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	dir, err := os.MkdirTemp(o.dir, "chaos-*")
	if err != nil {
		return r, err
	}
	defer func() {
		if o.keep || err != nil {
			fmt.Fprintf(out, "data and logs left in %s\n", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	c := &chaos{o: o, out: out, dir: dir, rng: rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15)),
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	fmt.Fprintf(out, "chaos: %d sites (and %d in the fleet process), at least %d releases and %d kills of each kind, seed %d, data in %s\n", o.sites, o.fleetSites, o.releases, o.killsEach, o.seed, dir)
	defer c.close()
	if err = c.start(ctx); err != nil {
		return r, err
	}
	r, err = c.exercise(ctx)
	return r, err
}

func (c *chaos) start(ctx context.Context) error {
	if err := c.loadExample(); err != nil {
		return err
	}
	replicas := 1
	if c.o.pg != nil {
		replicas = max(c.o.replicas, 1)
	}
	fleetPorts := 0
	if c.o.fleetSites > 0 {
		fleetPorts = 1 + c.o.fleetSites
	}
	ports, err := freePorts(7 + 2*c.o.sites + replicas + fleetPorts)
	if err != nil {
		return err
	}
	c.gw = &http.Client{Timeout: 5 * time.Second}
	c.manager = c.gw
	scheme := "http"
	var gwAuthArgs, gwEnv []string
	var probe *http.Client
	if c.o.auth {
		if c.trust, err = newTrust(filepath.Join(c.dir, "trust"), ports[5+c.o.sites+replicas], filepath.Join(c.dir, "gateway", "pki")); err != nil {
			return err
		}
		scheme = "https"
		gwAuthArgs, gwEnv = c.trust.gatewayArgs()
		probe = probeClient()
	}
	c.temporal.opts = app.TemporalOptions{Binary: c.o.temporal, DataDir: filepath.Join(c.dir, "temporal"), Port: ports[0], UIPort: ports[1]}
	if c.temporal.srv, err = app.StartTemporal(ctx, c.temporal.opts); err != nil {
		return err
	}
	if c.tc, err = workers.Dial(ctx, c.temporal.srv.Address, workers.DefaultNamespace, c.log); err != nil {
		return err
	}
	c.gwURL = fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2])
	regAddr := fmt.Sprintf("127.0.0.1:%d", ports[3])
	logs := filepath.Join(c.dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	var dsn string
	if c.o.pg != nil {
		if dsn, err = c.o.pg.CreateDatabase(fmt.Sprintf("chaos_%d", c.rng.Uint32())); err != nil {
			return err
		}
	}
	for i := range replicas {
		addr := strings.TrimPrefix(c.gwURL, scheme+"://")
		if c.o.pg != nil {
			addr = fmt.Sprintf("127.0.0.1:%d", ports[5+c.o.sites+i])
		}
		args := []string{"gateway", "--addr", addr,
			"--data-dir", filepath.Join(c.dir, "gateway", strconv.Itoa(i)), "--temporal-address", c.temporal.srv.Address, "--log-level", "warn"}
		if c.trust != nil {
			args = append(args, gwAuthArgs...)
		} else {
			args = append(args, "--insecure-no-auth")
		}
		if dsn != "" {
			args = append(args, "--store", dsn)
		}
		gw := &proc{name: fmt.Sprintf("gateway-%d", i), bin: c.o.bin, log: filepath.Join(logs, fmt.Sprintf("gateway-%d.log", i)), ready: scheme + "://" + addr + "/readyz", args: args, env: gwEnv, probe: probe}
		if err := gw.Start(ctx); err != nil {
			return err
		}
		c.gateways = append(c.gateways, gw)
	}
	webhookURL, webhook := c.gwURL+"/api/events", &http.Client{Timeout: 10 * time.Second}
	var workerEnv []string
	if c.trust != nil {
		if err := c.trust.loadCA(); err != nil {
			return err
		}
		if c.gw, err = c.trust.client("viewer.token"); err != nil {
			return err
		}
		if c.manager, err = c.trust.client("release-manager.token"); err != nil {
			return err
		}
		// The registry's Event Grid deliveries: the CA, and the shared key.
		if webhook, err = auth.Client(c.trust.ca, nil); err != nil {
			return err
		}
		webhook.Timeout = 10 * time.Second
		webhookURL += "?" + events.DefaultKeyQueryParam + "=" + c.trust.eventKey
		workerEnv = []string{"MODELFLEET_TOKEN_FILE=" + c.trust.tokens["worker.token"], "MODELFLEET_GATEWAY_CA=" + filepath.Join(c.trust.dir, "ca.crt")}
	}
	if c.o.pg != nil {
		ln, err := net.Listen("tcp", strings.TrimPrefix(c.gwURL, scheme+"://"))
		if err != nil {
			return err
		}
		c.balancer = &balancer{ln: ln, replicas: c.gateways}
		for _, gw := range c.gateways {
			c.balancer.addrs = append(c.balancer.addrs, strings.TrimPrefix(strings.TrimSuffix(gw.ready, "/readyz"), scheme+"://"))
		}
		go c.balancer.serve()
	}

	ln, err := net.Listen("tcp", regAddr)
	if err != nil {
		return err
	}
	c.registry, err = registry.Open(filepath.Join(c.dir, "registry"), registry.Options{
		WebhookURL: webhookURL,
		PublicURL:  "http://" + regAddr,
		Logger:     c.log,
		HTTPClient: webhook,
	})
	if err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: c.registry.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()

	metrics := fmt.Sprintf("127.0.0.1:%d", ports[4])
	c.worker = &proc{name: "worker", bin: c.o.bin, log: filepath.Join(logs, "worker.log"), ready: "http://" + metrics + "/readyz", env: workerEnv,
		args: []string{"worker", "--temporal-address", c.temporal.srv.Address, "--registry-url", "http://" + regAddr,
			"--gateway-url", c.gwURL, "--metrics-addr", metrics, "--training-dir", filepath.Join(c.dir, "training"), "--log-level", "warn"}}
	if c.trust != nil {
		// It signs every validated version with the gateway's release
		// keys, as the cloud chart mounts them.
		c.worker.args = append(c.worker.args, "--release-keys", filepath.Join(c.trust.pki, "release-keys"))
	}
	if err := c.worker.Start(ctx); err != nil {
		return err
	}

	for i := range c.o.sites {
		id := fmt.Sprintf("site-%d", i+1)
		ring := "main"
		if i == 0 {
			ring = "canary"
		}
		addr := fmt.Sprintf("127.0.0.1:%d", ports[5+i])
		s := &site{id: id, dir: filepath.Join(c.dir, "sites", id), router: "http://" + addr}
		if c.o.diskFull && i == c.o.sites-1 && i > 0 {
			if c.disk = mountDisk(s); c.disk.skipped != "" {
				fmt.Fprintf(c.out, "disk full: not injected: %s\n", c.disk.skipped)
			}
		}
		s.proc = &proc{name: id, bin: c.o.bin, log: filepath.Join(logs, id+".log"), ready: s.router + "/healthz",
			args: []string{"edge", "--site", id, "--gateway-url", c.gwURL, "--data-dir", s.dir, "--listen", addr,
				"--label", "ring=" + ring, "--heartbeat", "2s", "--log-level", "warn"}}
		if c.trust != nil {
			if err := c.enrol(ctx, s, ring); err != nil {
				return err
			}
		} else if err := s.proc.Start(ctx); err != nil {
			return err
		}
		c.sites = append(c.sites, s)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, c.gwURL+"/api/policies/"+modelName, strings.NewReader(policy))
	resp, err := c.manager.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("put policy: %s", resp.Status)
	}
	if c.o.fleetSites > 0 {
		if err := c.startFleet(ctx, ports[7+2*c.o.sites+replicas:], logs); err != nil {
			return err
		}
	}
	c.obs = newObserver(c.gwURL, c.gw, c.allSites(), c.scoreBody())
	c.obs.logf = func(format string, args ...any) { fmt.Fprintf(c.out, "VIOLATION "+format+"\n", args...) }
	if c.o.workloads {
		return c.startWorkloads(ctx, ports[6+c.o.sites+replicas:])
	}
	return nil
}

func (c *chaos) loadExample() error {
	var err error
	if c.card, err = app.ReadModelCard(filepath.Join(c.o.example, app.ModelCardFile)); err != nil {
		return err
	}
	if c.artifact, err = os.ReadFile(filepath.Join(c.o.example, "model.txt")); err != nil {
		return err
	}
	c.valData, err = os.ReadFile(c.card.Validation.Data)
	return err
}

// scoreBody is the validation data's first row as a feature object.
func (c *chaos) scoreBody() []byte {
	rows, err := csv.NewReader(bytes.NewReader(c.valData)).ReadAll()
	if err != nil || len(rows) < 2 {
		return []byte("{}")
	}
	row := map[string]float64{}
	for i, name := range rows[0] {
		if v, err := strconv.ParseFloat(rows[1][i], 64); err == nil && name != "label" {
			row[name] = v
		}
	}
	b, _ := json.Marshal(row)
	return b
}

func (c *chaos) close() {
	c.wl.close()
	for _, s := range c.sites {
		s.proc.Stop()
	}
	if c.fleet != nil {
		c.fleet.Stop()
	}
	c.disk.unmount()
	if c.worker != nil {
		c.worker.Stop()
	}
	for _, gw := range c.gateways {
		gw.Stop()
	}
	if c.balancer != nil {
		c.balancer.ln.Close()
	}
	if c.registry != nil {
		c.registry.Close()
	}
	if c.tc != nil {
		c.tc.Close()
	}
	c.trust.close()
	c.temporal.Lock()
	if c.temporal.srv != nil {
		c.temporal.srv.Close()
	}
	c.temporal.Unlock()
}

// exercise runs the releases with the chaos beside them, then lets the
// stack settle and collects the figures.
func (c *chaos) exercise(ctx context.Context) (report, error) {
	r := report{outcomes: map[string]int{}}
	octx, stopObs := context.WithCancel(ctx)
	obsDone := make(chan struct{})
	go func() { c.obs.run(octx); close(obsDone) }()
	cctx, stopChaos := context.WithCancel(ctx)
	chaosDone := make(chan error, 1)
	go func() { chaosDone <- c.chaos(cctx) }()

	began := time.Now()
	for v := 1; ctx.Err() == nil; v++ {
		if v > c.o.releases && (c.killsDone() || time.Since(began) > c.o.maxDuration) {
			break
		}
		r.releases++
		if err := c.diskBefore(strconv.Itoa(v)); err != nil {
			stopChaos()
			<-chaosDone
			stopObs()
			<-obsDone
			return r, fmt.Errorf("fill %s's disk: %w", c.disk.site.id, err)
		}
		st, err := c.release(ctx, strconv.Itoa(v))
		switch {
		case err != nil:
			r.stuck++
			fmt.Fprintf(c.out, "release %d: %v\n", v, err)
		default:
			r.completed++
			r.outcomes[st.State]++
			fmt.Fprintf(c.out, "release %d: %s after %.1fs of chaos (kills so far %v)\n", v, st.State, time.Since(began).Seconds(), c.kills())
			c.diskAfter(ctx, strconv.Itoa(v), st)
		}
	}
	stopChaos()
	if err := <-chaosDone; err != nil && !errors.Is(err, context.Canceled) {
		stopObs()
		<-obsDone
		return r, err
	}
	// Everything up again: every agent must converge on its desired state.
	for _, s := range c.allSites() {
		if d, why, ok := c.obs.awaitConverged(ctx, s, time.Minute); !ok {
			c.unrecovered.Add(1)
			fmt.Fprintf(c.out, "%s: not converged %.0fs after the chaos stopped: %s\n", s.id, d.Seconds(), why)
		}
	}
	stopObs()
	<-obsDone
	if c.wl != nil {
		f := c.wl.finish(90 * time.Second)
		r.workloads = &f
	}
	sent, lost, err := c.signals(ctx)
	if err != nil {
		return r, err
	}
	r.kills = c.kills()
	r.duplicateSteps = c.obs.duplicateSteps.Load()
	r.regressions = c.obs.revisionRegressions.Load()
	r.scores, r.scoreErrors = c.obs.scores.Load(), c.obs.scoreErrors.Load()
	r.signalsSent, r.lostSignals = sent, lost
	r.maxRecovery = c.maxRecovery
	r.unrecovered = int(c.unrecovered.Load())
	r.corruptions = int(c.corruptions.Load())
	r.offline = int(c.offline.Load())
	r.approvals = c.approvals.Load()
	if d := c.disk; d != nil {
		r.disk = d
	}
	if c.trust != nil {
		// Every agent restarted from the identity it enrolled with: the
		// certificate on its disk is the one it got at enrolment.
		r.auth, r.enrolments = true, c.enrolments.Load()
		for _, s := range c.allSites() {
			// Every version stored at a site came with the worker's signed
			// release statement, which the site verified against the keys
			// it pinned at enrolment and keeps in the version's metadata.
			models, _ := filepath.Glob(filepath.Join(s.dir, "models", "*", "*", "*.model"))
			for _, m := range models {
				var meta struct {
					Statement json.RawMessage `json:"statement"`
				}
				b, err := os.ReadFile(strings.TrimSuffix(m, ".model") + ".json")
				if err == nil {
					err = json.Unmarshal(b, &meta)
				}
				if err != nil || len(meta.Statement) == 0 || string(meta.Statement) == "null" {
					r.unsigned++
					fmt.Fprintf(c.out, "%s: %s stored without its signed statement\n", s.id, m)
				}
			}
			r.signedModels += len(models)
			if certID(s.dir) != s.cert {
				r.reenrolled++
				fmt.Fprintf(c.out, "%s: its certificate changed since enrolment\n", s.id)
			}
		}
	}
	if c.o.pg != nil {
		r.store, r.replicas, r.storeRestarts = "postgres", len(c.gateways), c.storeRestarts.Load()
	}
	r.fleetSites = len(c.fleetSites)
	if c.balancer != nil {
		r.balancerAcceptErrors = c.balancer.acceptErrors.Load()
	}
	r.print(c.out)
	return r, nil
}

// release registers version v (new bytes, so every site downloads it),
// approves its gate whenever it waits there, and waits for it to end.
func (c *chaos) release(ctx context.Context, v string) (modelfleet.ReleaseStatus, error) {
	artifact := append(bytes.Clone(c.artifact), bytes.Repeat([]byte{'\n'}, len(v)+mustAtoi(v))...)
	m := modelfleet.Model{
		ModelRef: modelfleet.ModelRef{Name: modelName, Version: v},
		Format:   c.card.Format, Features: c.card.Features, Tags: c.card.Tags, Properties: c.card.Properties,
		Validation: &modelfleet.ValidationSpec{Metric: c.card.Validation.Metric, Threshold: c.card.Validation.Threshold},
	}
	if _, _, err := c.registry.Register(ctx, m, bytes.NewReader(artifact), bytes.NewReader(c.valData)); err != nil {
		return modelfleet.ReleaseStatus{}, fmt.Errorf("register: %w", err)
	}
	id := modelfleet.ReleaseWorkflowID(m.ModelRef)
	orc := orchestrator.New(c.tc)
	deadline := time.Now().Add(c.o.releaseTimeout)
	last := ""
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return modelfleet.ReleaseStatus{}, err
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := orc.ReleaseStatus(qctx, id)
		cancel()
		if err == nil {
			last = st.State
			switch st.State {
			case modelfleet.StateSucceeded, modelfleet.StateRolledBack, modelfleet.StateAborted, modelfleet.StateFailed:
				return st, nil
			case modelfleet.StateAwaitingApproval:
				c.approve(ctx, orc, id, v)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	return modelfleet.ReleaseStatus{}, fmt.Errorf("%s stuck: not terminal after %s (last state %q)", id, c.o.releaseTimeout, last)
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// kinds of chaos, in turn.
const (
	killGateway  = "gateway"
	killWorker   = "worker"
	killTemporal = "temporal"
	killAgent    = "agent"
	takeOffline  = "offline"
	corruptFile  = "corrupt"
	restartStore = "store"
	killWorkload = "workload"
	killFleet    = "fleet"
)

// actions are the chaos's, in turn; with PostgreSQL, restartStore too.
func (c *chaos) actions() []string {
	a := []string{killGateway, killWorker, killTemporal, killAgent, takeOffline, corruptFile}
	if c.o.pg != nil {
		a = append(a, restartStore)
	}
	if c.wl != nil {
		a = append(a, killWorkload)
	}
	if c.fleet != nil {
		a = append(a, killFleet)
	}
	return a
}

func (c *chaos) kills() map[string]int64 {
	var agents int64
	for _, s := range c.sites {
		agents += s.proc.kills.Load()
	}
	var gateways int64
	for _, gw := range c.gateways {
		gateways += gw.kills.Load()
	}
	k := map[string]int64{
		killGateway: gateways, killWorker: c.worker.kills.Load(),
		killTemporal: c.temporalKills.Load(), killAgent: agents,
	}
	if c.o.pg != nil {
		k[restartStore] = c.storeRestarts.Load()
	}
	if c.wl != nil {
		k[killWorkload] = c.wl.kills()
	}
	if c.fleet != nil {
		k[killFleet] = c.fleet.kills.Load()
	}
	return k
}

func (c *chaos) killsDone() bool {
	for _, n := range c.kills() {
		if n < int64(c.o.killsEach) {
			return false
		}
	}
	return true
}

// chaos does one action every interval (jittered) until ctx is done. A
// process that fails to come back is an error of the run.
func (c *chaos) chaos(ctx context.Context) error {
	for i := 0; ; i++ {
		wait := time.Duration(float64(c.o.interval) * (0.5 + c.rng.Float64()))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		// Restarts use a context of their own: stopping the chaos must not
		// leave a process down.
		actions := c.actions()
		if err := c.act(context.WithoutCancel(ctx), actions[i%len(actions)]); err != nil {
			// Said now, not only at the end: what it left down skews the
			// figures of the releases still running (a workload runner not
			// restarted leaves its readings undecided).
			fmt.Fprintf(c.out, "chaos: %s failed, the chaos stops and the run will fail: %v\n", actions[i%len(actions)], err)
			return err
		}
	}
}

func (c *chaos) act(ctx context.Context, action string) error {
	pause := func() { time.Sleep(time.Duration(200+c.rng.IntN(1300)) * time.Millisecond) }
	switch action {
	case killGateway:
		gw := c.gateways[c.rng.IntN(len(c.gateways))]
		gw.Kill()
		pause()
		return gw.Start(ctx)
	case restartStore:
		// Mid-wave, whatever the wave: every replica loses its connections.
		c.storeRestarts.Add(1)
		return c.o.pg.Restart()
	case killWorkload:
		// Down for 1 to 2.5 s: the line keeps publishing to its session.
		i := c.rng.IntN(len(c.sites))
		return c.wl.kill(ctx, i, c.sites[i].id, func() { time.Sleep(time.Second); pause() })
	case killFleet:
		// Every fleet site down at once, mid-wave; back from the
		// identities and models on their disks.
		c.fleet.Kill()
		pause()
		return c.fleet.Start(ctx)
	case killWorker:
		c.worker.Kill()
		pause()
		return c.worker.Start(ctx)
	case killTemporal:
		c.temporal.Lock()
		defer c.temporal.Unlock()
		c.temporal.srv.Kill()
		c.temporalKills.Add(1)
		pause()
		srv, err := app.StartTemporal(ctx, c.temporal.opts)
		if err != nil {
			return err
		}
		c.temporal.srv = srv
		return nil
	case killAgent:
		s := c.pickSite()
		s.proc.Kill()
		pause()
		return c.restartAgent(ctx, s)
	case takeOffline:
		// Offline through (part of) its wave: down for 5 to 10 s.
		s := c.pickSite()
		s.proc.Kill()
		c.offline.Add(1)
		time.Sleep(time.Duration(5000+c.rng.IntN(5000)) * time.Millisecond)
		return c.restartAgent(ctx, s)
	case corruptFile:
		s := c.pickSite()
		s.proc.Kill()
		n, err := corruptModel(s.dir)
		if err != nil {
			return err
		}
		c.corruptions.Add(int64(n))
		return c.restartAgent(ctx, s)
	}
	return fmt.Errorf("unknown chaos action %q", action)
}

// restartAgent brings an agent back and, beside the chaos, measures how
// long it takes to converge on its desired state.
func (c *chaos) restartAgent(ctx context.Context, s *site) error {
	if err := s.proc.Start(ctx); err != nil {
		return err
	}
	go func() {
		d, _, ok := c.obs.awaitConverged(ctx, s, time.Minute)
		if !ok {
			// The release may have moved on meanwhile; the final check
			// after the chaos decides whether the site recovered.
			return
		}
		c.recoveryMu.Lock()
		c.maxRecovery = max(c.maxRecovery, d)
		c.recoveryMu.Unlock()
	}()
	return nil
}

// signals waits for the signal queue to drain and accounts for every
// message sent to it: lost = sent - completed - dead-lettered - queued.
func (c *chaos) signals(ctx context.Context) (sent, lost int64, err error) {
	var st queue.Stats
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.gwURL+"/api/queues/signals/stats", nil)
		resp, err := c.gw.Do(req)
		if err != nil {
			return 0, 0, err
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			return 0, 0, fmt.Errorf("queue stats: %w", err)
		}
		if st.Active == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	return st.Sent, st.Sent - st.Completed - st.DeadLettered - st.Active, nil
}

// approve opens the release's gate. With -auth, as an approver would:
// `modelfleet release approve` with the approver's token, through the
// gateway, which signs the control (the release refuses an unsigned one).
// Without, the signal goes to Temporal directly. A failure (the gateway or
// Temporal down) is retried at the next poll.
func (c *chaos) approve(ctx context.Context, orc *orchestrator.Temporal, id, v string) {
	if c.trust != nil {
		if _, err := c.trust.cli(ctx, c.o.bin, c.gwURL, "approver.token", "release", "approve", modelName, v, "--reason", "chaos suite approves every gate"); err == nil {
			c.approvals.Add(1)
		}
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if orc.SignalControl(sctx, id, modelfleet.SignalApprove, modelfleet.Control{By: "chaos", Reason: "chaos suite approves every gate"}) == nil {
		c.approvals.Add(1)
	}
}

// enrol starts a site's agent for the first time as a new site is set up:
// a join token from `modelfleet site enroll` (the CLI, as the admin),
// given once in $MODELFLEET_JOIN_TOKEN. The agent enrols (CSR, its
// certificate from the site CA, the release keys pinned); from then on it
// starts from the identity on its disk, with no token.
func (c *chaos) enrol(ctx context.Context, s *site, ring string) error {
	tok, err := c.trust.cli(ctx, c.o.bin, c.gwURL, "admin.token", "site", "enroll", s.id, "--label", "ring="+ring)
	if err != nil {
		return err
	}
	s.proc.env = []string{"MODELFLEET_JOIN_TOKEN=" + tok}
	if err := s.proc.Start(ctx); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for s.cert = certID(s.dir); s.cert == ""; s.cert = certID(s.dir) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not enrol within 60 s (log: %s)", s.id, s.proc.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "identity", "release-keys.json")); err != nil {
		return fmt.Errorf("%s enrolled without pinning the release keys: %w", s.id, err)
	}
	c.enrolments.Add(1)
	s.proc.mu.Lock()
	s.proc.env = nil // restarts run from the identity on disk
	s.proc.mu.Unlock()
	return nil
}

// pickSite is a site for a chaos action: any but one whose disk is full
// (disk.go).
func (c *chaos) pickSite() *site {
	for {
		if s := c.sites[c.rng.IntN(len(c.sites))]; !s.full.Load() {
			return s
		}
	}
}
