package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/agent"
	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/drift"
	"github.com/modelfleet/modelfleet/httpjson"
	"github.com/modelfleet/modelfleet/queue"
	"github.com/modelfleet/modelfleet/registry"
	"github.com/modelfleet/modelfleet/workers"
)

// DevConfig configures the embedded stack. Zero values are the defaults a
// newcomer gets from `make run`.
type DevConfig struct {
	DataDir        string // default ./.modelfleet
	Store          string // PostgreSQL DSN for the gateway's state (default: bbolt in DataDir)
	Sites          int    // simulated factory sites (default 3)
	TemporalBinary string // default FindTemporal()
	TemporalPort   int    // default 7233
	UIPort         int    // default 8233
	GatewayAddr    string // default 127.0.0.1:8080
	RegistryAddr   string // default 127.0.0.1:8081
	SiteBasePort   int    // site-N's router listens on SiteBasePort+N-1 (default 9001)
	// Factory runs the shop floor too: an MQTT broker on MQTTAddr (default
	// 127.0.0.1:1883), a line simulator per site (control API on
	// SimBasePort+N-1, default 9101) and the sample workload (API on
	// WorkloadBasePort+N-1, default 9201).
	Factory                       bool
	MQTTAddr                      string
	SimBasePort, WorkloadBasePort int
	// The monitoring loop: each site's window (default DevSignalInterval),
	// the monitor's lookback (DevMonitorLookback) and fewest rows (1000),
	// and how long retraining waits for more drift (DevRetrainDebounce).
	SignalInterval, MonitorLookback time.Duration
	MonitorMinRows                  int64
	RetrainDebounce                 time.Duration
	// EphemeralPorts binds every listener on a free port the kernel picks
	// (Temporal's on free ports found just before it starts, retried if
	// one is taken meanwhile), ignoring the addresses and base ports
	// above. Read where things landed from Endpoints (EndpointsFile in
	// DataDir). For tests and several stacks side by side.
	EphemeralPorts bool
	// OIPServers are the external model servers every site may run
	// versions in (agent.Config.OIPServers).
	OIPServers []agent.OIPServer
	Logger     *slog.Logger
	Out        io.Writer // where the banner goes (default os.Stdout)
	// Ready, if set, is called once everything is up.
	Ready func(*Dev)
}

// The embedded stack's monitoring loop runs faster than production's
// defaults (a minute per window, ten minutes of lookback, two minutes of
// debounce), so `modelfleet simulate drift` shows its effect within a few
// minutes.
const (
	DevSignalInterval  = 15 * time.Second
	DevMonitorLookback = 5 * time.Minute
	DevRetrainDebounce = time.Minute
)

// Dev is the running embedded stack.
type Dev struct {
	Temporal *TemporalServer
	Client   client.Client
	Gateway  *Gateway
	Registry *registry.Registry
	// RegistryURL is the embedded registry's base URL.
	RegistryURL string
	// Sites are the simulated sites' edge agents.
	Sites []*agent.Site
	// Signals is the embedded edge-signal queue (Service Bus semantics).
	Signals queue.Store
	// Monitor consumes Signals: drift verdicts to releases and retraining.
	Monitor *Monitor
	factory *factory
}

func (c *DevConfig) setDefaults() error {
	if c.DataDir == "" {
		c.DataDir = ".modelfleet"
	}
	if c.Sites == 0 {
		c.Sites = 3
	}
	if c.Sites < 1 || c.Sites > 100 {
		return fmt.Errorf("--sites %d is out of range: the embedded stack runs 1 to 100 simulated sites", c.Sites)
	}
	if c.GatewayAddr == "" {
		c.GatewayAddr = DefaultGatewayAddr
	}
	if c.RegistryAddr == "" {
		c.RegistryAddr = "127.0.0.1:8081"
	}
	if c.SiteBasePort == 0 {
		c.SiteBasePort = 9001
	}
	if c.MQTTAddr == "" {
		c.MQTTAddr = "127.0.0.1:1883"
	}
	if c.SimBasePort == 0 {
		c.SimBasePort = 9101
	}
	if c.WorkloadBasePort == 0 {
		c.WorkloadBasePort = 9201
	}
	if c.EphemeralPorts {
		c.GatewayAddr, c.RegistryAddr, c.MQTTAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		c.SiteBasePort, c.SimBasePort, c.WorkloadBasePort = 0, 0, 0
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	if c.TemporalBinary == "" {
		bin, err := FindTemporal()
		if err != nil {
			return err
		}
		c.TemporalBinary = bin
	}
	return nil
}

// RunDev runs the whole embedded stack in the foreground until ctx is done:
// a Temporal dev server, the gateway, the embedded registry (delivering
// Event Grid events to the gateway), the cloud worker and Sites edge agents.
// Everything it stores lives under DataDir, so a restart resumes where it
// stopped: sites serve their last good models before Temporal is even up.
func RunDev(ctx context.Context, cfg DevConfig) (err error) {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	log := orDefault(cfg.Logger)
	d := &Dev{}
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()

	// Sites first: they serve from disk with nothing else running.
	for i := 1; i <= cfg.Sites; i++ {
		id := "site-" + strconv.Itoa(i)
		s, err := agent.Open(agent.Config{
			SiteID:  id,
			DataDir: filepath.Join(cfg.DataDir, "sites", id),
			Listen:  listenAt(cfg.SiteBasePort, i-1),
			Labels:  siteLabels(i),
			Logger:  log,
			// Short windows, so the drift demo shows within minutes.
			SignalInterval: cmp.Or(cfg.SignalInterval, DevSignalInterval),
			OIPServers:     cfg.OIPServers,
		})
		if err != nil {
			return err
		}
		d.Sites = append(d.Sites, s)
	}

	d.Temporal, err = startDevTemporal(ctx, cfg, log)
	if err != nil {
		return err
	}
	closers = append(closers, func() { d.Temporal.Close() })

	d.Client, err = workers.Dial(ctx, d.Temporal.Address, workers.DefaultNamespace, log)
	if err != nil {
		return err
	}
	closers = append(closers, d.Client.Close)

	// The gateway, with the embedded stand-in for the Service Bus queue
	// edge signals travel on and the drift monitor consuming it.
	retrain := modelfleet.RetrainInput{Debounce: cmp.Or(cfg.RetrainDebounce, DevRetrainDebounce)}
	d.Gateway, err = OpenGateway(GatewayConfig{
		Addr: cfg.GatewayAddr, DataDir: filepath.Join(cfg.DataDir, "gateway"), QueueDir: filepath.Join(cfg.DataDir, "queue"),
		Temporal: d.Client, Retrain: retrain, Logger: log, Store: cfg.Store, TemporalUI: d.Temporal.UIURL,
		// Authentication on, with the stack's own OIDC issuer: the CLI
		// finds its credential, the CA and the gateway's URL in
		// <data-dir>/credentials.
		Auth: &AuthConfig{DevIssuer: true, CredentialsDir: filepath.Join(cfg.DataDir, "credentials")},
		// A simulated site runs five machines: compare each with itself.
		Monitor: drift.Options{
			Lookback: cmp.Or(cfg.MonitorLookback, DevMonitorLookback), MinRows: cfg.MonitorMinRows,
			Reference: drift.ReferenceSite,
		},
	})
	if err != nil {
		return err
	}
	d.Signals, d.Monitor = d.Gateway.Signals, d.Gateway.Monitor
	closers = append(closers, func() { d.Gateway.Close() })
	for _, s := range d.Sites {
		// Register each simulated site once, as an operator would; the
		// agents keep their records current with their reports.
		if _, err := d.Gateway.Directory.Get(s.Record().ID); modelfleet.ErrorCode(err) == modelfleet.ENOTFOUND {
			if _, err := d.Gateway.Directory.Put(s.Record()); err != nil {
				return err
			}
		}
		// And enrol it once, as `modelfleet site enroll` and `edge
		// --join-token` do: the agent generates its key and gets its
		// certificate over the same API a real site uses.
		if !s.Enrolled() {
			tok, err := d.Gateway.JoinToken(s.Record().ID, s.Record().Labels, "modelfleet dev")
			if err != nil {
				return err
			}
			s.SetJoinToken(tok)
		}
	}
	gwClient, err := d.Gateway.Client("worker.token")
	if err != nil {
		return err
	}

	regSrv, err := d.openRegistry(cfg, log)
	if err != nil {
		return err
	}
	closers = append(closers, func() { regSrv.Close(); d.Registry.Close() })

	rt, err := devRetraining(cfg.DataDir, d.Client, log)
	if err != nil {
		return err
	}
	// With authentication on, sites reach nothing but the gateway: every
	// artifact is mirrored there (the registry wants a token).
	cw, err := StartCloudWorker(WorkerConfig{Temporal: d.Client, RegistryURL: d.RegistryURL, GatewayURL: d.Gateway.URL(), GatewayClient: gwClient, MirrorArtifacts: d.Gateway.sec != nil, Retraining: rt, Logger: log,
		ReleaseSigner: d.Gateway.ReleaseSigner()})
	if err != nil {
		return err
	}
	closers = append(closers, cw.Stop)

	done := make(chan error, len(d.Sites))
	sctx, cancelSites := context.WithCancel(ctx)
	for _, s := range d.Sites {
		s.SetGateway(d.Gateway.URL())
		go func() { done <- s.Run(sctx) }()
	}
	closers = append(closers, func() {
		cancelSites()
		for range d.Sites {
			<-done
		}
	})

	if cfg.Factory {
		d.factory, err = startFactory(sctx, cfg.DataDir, cfg.MQTTAddr, cfg.SimBasePort, cfg.WorkloadBasePort, d.Sites, log)
		if err != nil {
			return err
		}
		closers = append(closers, d.factory.close)
	}
	d.banner(cfg)
	if err := writeEndpoints(filepath.Join(cfg.DataDir, EndpointsFile), d.Endpoints()); err != nil {
		return err
	}
	if cfg.Ready != nil {
		cfg.Ready(d)
	}
	<-ctx.Done()
	log.Info("shutting down the embedded stack")
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return ctx.Err()
}

func (d *Dev) openRegistry(cfg DevConfig, log *slog.Logger) (*httpjson.Server, error) {
	// Bind first so the registry knows its own public URL for artifact links.
	ln, err := net.Listen("tcp", cfg.RegistryAddr)
	if err != nil {
		return nil, fmt.Errorf("registry: listen %s: %w", cfg.RegistryAddr, err)
	}
	d.RegistryURL = "http://" + ln.Addr().String()
	// Deliveries go to the gateway over TLS (the webhook's route is
	// public: Event Grid authenticates with its own keys or tokens).
	webhookClient, err := auth.Client(d.Gateway.CABundle(), nil)
	if err != nil {
		ln.Close()
		return nil, err
	}
	webhookClient.Timeout = 30 * time.Second
	d.Registry, err = registry.Open(filepath.Join(cfg.DataDir, "registry"), registry.Options{
		WebhookURL: d.Gateway.URL() + "/api/events",
		HTTPClient: webhookClient,
		PublicURL:  d.RegistryURL,
		Logger:     log.With("component", "registry"),
		Subject:    registeredBy,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	handler := d.Registry.Handler()
	if sec := d.Gateway.sec; sec != nil {
		handler = sec.guard.Wrap(registryRules(), handler)
	}
	srv := httpjson.NewServer(ln, handler)
	srv.Start(log, "registry")
	return srv, nil
}

// siteLabels gives the simulated fleet a canary ring and a plant layout, the
// labels release policies select waves by.
func siteLabels(i int) map[string]string {
	ring := "main"
	if i == 1 {
		ring = "canary"
	}
	return map[string]string{"ring": ring, "plant": fmt.Sprintf("plant-%c", 'a'+(i-1)/2)}
}

func (d *Dev) banner(cfg DevConfig) {
	w := tabwriter.NewWriter(cfg.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "\nmodelfleet embedded stack is up (data in %s)\n\n", cfg.DataDir)
	// A one-time link signs the browser in as the newcomer's identity;
	// the other identities' tokens can be pasted at /ui/login.
	if link, err := d.Gateway.DashboardLink("token"); err == nil {
		fmt.Fprintf(w, "  Dashboard\t%s\n", link)
	} else {
		fmt.Fprintf(w, "  Dashboard\t%s/ui/ (%v)\n", d.Gateway.URL(), err)
	}
	fmt.Fprintf(w, "  Temporal UI\t%s\n", d.Temporal.UIURL)
	fmt.Fprintf(w, "  Temporal frontend\t%s\n", d.Temporal.Address)
	fmt.Fprintf(w, "  Gateway webhook\t%s/api/events\n", d.Gateway.URL())
	fmt.Fprintf(w, "  Model registry\t%s\n", d.RegistryURL)
	fmt.Fprintf(w, "  Signal queue\t%s/api/queues/signals/stats\n", d.Gateway.URL())
	for i, s := range d.Sites {
		rec := s.Record()
		fmt.Fprintf(w, "  %s router\t%s\n", rec.ID, rec.RouterURL)
		if f := d.factory; f != nil {
			fmt.Fprintf(w, "  %s line simulator\t%s\n", rec.ID, f.lines[i])
			fmt.Fprintf(w, "  %s workload\t%s/decisions\n", rec.ID, f.works[i])
		}
	}
	if f := d.factory; f != nil {
		fmt.Fprintf(w, "  MQTT broker\t%s\n", f.broker.URL())
	}
	w.Flush()
	first := d.Sites[0].Record().RouterURL
	fmt.Fprintf(cfg.Out, `
Try, in another terminal:
  bin/modelfleet model register --name bearing-failure --version 1 --file examples/bearing-failure/model.txt
  bin/modelfleet release status bearing-failure 1
  curl -s -XPOST %s/score/bearing-failure -d @examples/bearing-failure/sample.json
  bin/modelfleet site list

`, first)
}
