package agent

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/edge"
	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/queue"
)

// DefaultHeartbeat is how often an edge agent reports to the site directory.
const DefaultHeartbeat = 10 * time.Second

// EdgeConfig configures the edge agent of one site. A site holds no Temporal
// credential and never dials Temporal; every connection it makes is
// outbound: to the gateway (desired state, reports), to where its artifacts
// are, and to where its signals go.
type EdgeConfig struct {
	SiteID            string
	DataDir           string // the site's own directory: models and state.json
	Listen            string // inference router address, e.g. 127.0.0.1:9001
	AdvertiseURL      string // router URL recorded in the directory (default: http://<bound address>)
	GatewayURL        string // site directory, reached outbound
	Labels            map[string]string
	HeartbeatInterval time.Duration // default DefaultHeartbeat
	// SignalInterval is how often the agent closes a monitoring window per
	// model version and queues its signal message (default
	// signals.DefaultInterval).
	SignalInterval time.Duration
	// SignalSender is where signal messages go: Service Bus in Azure mode.
	// Nil: the gateway's embedded queue (GatewayURL/api/queues/signals);
	// with no gateway either, figures are only exposed at /metrics.
	SignalSender queue.Sender
	// DesiredFile, if set, is where the site's desired state comes from (a
	// JSON modelfleet.Desired, e.g. the ConfigMap the gitops driver
	// commits), re-read every HeartbeatInterval, instead of the gateway.
	DesiredFile string
	// NoSignals turns the monitoring loop off: no signal messages, no
	// signal figures at /metrics (thousands of simulated sites in one
	// benchmark process, where each site's buffer file would count).
	NoSignals bool
	// ExternalWorkloads says the site's workloads run as processes of their
	// own (`modelfleet workload run`, a Deployment the gitops driver
	// renders), not in this agent: the agent then reports none, instead of
	// failing each for want of its code.
	ExternalWorkloads bool
	Logger            *slog.Logger
}

// Edge is a running edge agent: the router serves from disk as soon as
// OpenEdge returns; Run connects outward (the gateway: desired state and
// reports).
type Edge struct {
	Agent *edge.Agent
	cfg   EdgeConfig
	http  *httpServer
	log   *slog.Logger
	sig   *edgeSignals
	// converge loop state: the last revision applied and each model's error
	lastApplied int64
	lastError   map[string]string
}

// OpenEdge opens the site's store, loads its last good models and starts the
// router, before connecting to anything: an offline site keeps serving.
func OpenEdge(cfg EdgeConfig) (*Edge, error) {
	if err := modelfleet.ValidateName("site id", cfg.SiteID); err != nil {
		return nil, err
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeat
	}
	log := orDefault(cfg.Logger).With("component", "edge", "site", cfg.SiteID)
	agent, err := edge.Open(cfg.DataDir, edge.Config{
		SiteID:     cfg.SiteID,
		Loader:     func(format string, data []byte) (edge.Scorer, error) { return inference.Load(format, data) },
		Vectorizer: inference.Vector,
		Logger:     log,
	})
	if err != nil {
		return nil, err
	}
	var sig *edgeSignals
	if !cfg.NoSignals {
		if sig, err = openSignals(cfg, agent, log); err != nil {
			return nil, err
		}
	}
	srv, err := listen(cfg.Listen, agent.Handler())
	if err != nil {
		if sig != nil {
			sig.buf.Close()
		}
		return nil, fmt.Errorf("edge %s: listen %s: %w", cfg.SiteID, cfg.Listen, err)
	}
	if cfg.AdvertiseURL == "" {
		cfg.AdvertiseURL = srv.URL()
	}
	srv.serve(log, "router")
	log.Info("inference router serving", "url", cfg.AdvertiseURL, "models", len(agent.Served()))
	return &Edge{Agent: agent, cfg: cfg, http: srv, log: log, sig: sig, lastError: map[string]string{}}, nil
}

// Site is the record the agent reports to the directory.
func (e *Edge) Site() modelfleet.Site {
	return modelfleet.Site{
		ID:        e.cfg.SiteID,
		RouterURL: e.cfg.AdvertiseURL,
		// Nothing polls it (sites run no Temporal worker), but a gateway
		// requires the field in a site record.
		TaskQueue: modelfleet.SiteTaskQueue(e.cfg.SiteID),
		Labels:    e.cfg.Labels,
		Serving:   e.Agent.Served(),
	}
}

// Run pulls the site's desired state and reports what it serves (outbound
// only, retrying while offline) until ctx is done.
func (e *Edge) Run(ctx context.Context) error {
	defer e.http.close()
	e.sig.connect(e.cfg)
	sigDone := make(chan struct{})
	go func() { e.sig.run(ctx); close(sigDone) }()
	defer func() { <-sigDone }()
	switch {
	case e.cfg.DesiredFile != "":
		go e.convergeFromFile(ctx)
	case e.cfg.GatewayURL != "":
		go e.converge(ctx)
	}
	<-ctx.Done()
	return nil
}

// SetGatewayURL points the agent at its gateway before Run: the embedded
// stack learns the gateway's address only after its sites opened.
func (e *Edge) SetGatewayURL(u string) { e.cfg.GatewayURL = u }
