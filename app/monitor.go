package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/drift"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/httpjson"
	"github.com/modelfleet/modelfleet/orchestrator"
	"github.com/modelfleet/modelfleet/queue"
	"github.com/modelfleet/modelfleet/signals"
)

// MonitorConfig configures the cloud half of the monitoring loop.
type MonitorConfig struct {
	// Queue is where the sites' signal messages arrive: the embedded
	// queue, or Service Bus in Azure mode.
	Queue queue.Receiver
	// Temporal receives what the verdicts trigger, through
	// orchestrator.New(Temporal).
	Temporal client.Client
	// Orchestrator, if set, is used instead of Temporal.
	Orchestrator modelfleet.Orchestrator
	// Directory holds the baselines the validation step stored and the
	// sites' desired states: the gateway's own (LocalDirectory) where the
	// monitor runs in the gateway, a fleet.Client elsewhere.
	Directory MonitorDirectory
	// Retrain is the input a retraining started by drift gets (debounce,
	// cooldown); zero values take the workflow's defaults.
	Retrain modelfleet.RetrainInput
	// Drift overrides the monitor's options (lookback, minimum rows,
	// thresholds); Baselines, Sink and Logger are set here.
	Drift  drift.Options
	Logger *slog.Logger
	// SiteStamped: every message must carry the SiteProperty the gateway
	// stamps from its sender's certificate, and speak only of that site;
	// any other is dead-lettered. Set when the gateway authenticates
	// sites.
	SiteStamped bool
}

// MonitorDirectory is what the monitor reads from the fleet directory.
type MonitorDirectory interface {
	Baseline(ctx context.Context, model, version string) (fleet.BaselineRecord, error)
	Desired(ctx context.Context, site string, after int64, wait time.Duration) (modelfleet.Desired, error)
}

var _ MonitorDirectory = (*fleet.Client)(nil)

// LocalDirectory reads a directory in the same process.
type LocalDirectory struct{ *fleet.Directory }

// Baseline implements MonitorDirectory.
func (l LocalDirectory) Baseline(_ context.Context, model, version string) (fleet.BaselineRecord, error) {
	return l.Directory.Baseline(model, version)
}

// Desired implements MonitorDirectory: the current desired state (wait is
// ignored: after -1 never waits).
func (l LocalDirectory) Desired(ctx context.Context, site string, after int64, _ time.Duration) (modelfleet.Desired, error) {
	return l.Directory.Desired(ctx, site, after)
}

// Monitor is the running drift monitor.
type Monitor struct {
	*drift.Monitor
	cfg MonitorConfig
	log *slog.Logger
}

// NewMonitor builds the monitor: verdicts that show drift start (or feed)
// the model's retraining workflow, the same path Azure ML's
// DatasetDriftDetected takes; every breach of a version is also sent to
// that version's running release, which rolls back if it is baking there.
func NewMonitor(cfg MonitorConfig) (*Monitor, error) {
	if cfg.Orchestrator == nil && cfg.Temporal != nil {
		cfg.Orchestrator = orchestrator.New(cfg.Temporal)
	}
	if cfg.Queue == nil || cfg.Orchestrator == nil || cfg.Directory == nil {
		return nil, errors.New("monitor: queue, Temporal client and directory are required")
	}
	log := orDefault(cfg.Logger).With("component", "monitor")
	opts := cfg.Drift
	opts.Baselines = &directoryBaselines{dir: cfg.Directory}
	opts.Sink = &verdictSink{o: cfg.Orchestrator, dir: cfg.Directory, retrain: cfg.Retrain, log: log}
	opts.Logger = log
	if cfg.SiteStamped {
		opts.SenderProperty = SiteProperty
	}
	m, err := drift.NewMonitor(opts)
	if err != nil {
		return nil, err
	}
	return &Monitor{Monitor: m, cfg: cfg, log: log}, nil
}

// Run consumes signal messages until ctx is done. A malformed message is
// dead-lettered with its reason; it never stops the consumer.
func (m *Monitor) Run(ctx context.Context) error {
	m.log.Info("drift monitor consuming signals")
	// Series lock on their own and windows take messages in any order, so
	// handlers run side by side; eight of them, with 32 messages received
	// ahead, let each queue commit settle several messages at once
	// (bench-signals: 21,600 signals/s on two cores, against 17,900 with
	// four handlers and a prefetch of eight).
	concurrency := 8
	if m.cfg.Drift.State != nil {
		// A handler waits for the write of its window (one write carries
		// the windows of every handler waiting): more of them, more
		// windows a write (BenchmarkMonitorState: 4 signals a write with
		// eight handlers, 13 to 16 with 32, and a third less CPU a signal).
		concurrency = 32
	}
	return queue.Consume(ctx, m.cfg.Queue, m.Handle, queue.ConsumeOptions{Concurrency: concurrency, Prefetch: 32, Logger: m.log})
}

// Start runs the monitor in the background and serves its verdicts at the
// gateway's GET /api/monitor; the returned function stops it and waits.
func (m *Monitor) Start(ctx context.Context, gw *Gateway) (stop func()) {
	gw.Handle("/api/monitor", m.Handler())
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.Run(mctx); err != nil && mctx.Err() == nil {
			m.log.Error("drift monitor stopped", "error", err)
		}
	}()
	return func() { cancel(); <-done }
}

// directoryBaselines reads baselines from the fleet directory, once per
// version (a version's baseline never changes once validated).
type directoryBaselines struct {
	dir   MonitorDirectory
	cache sync.Map // modelfleet.ModelRef -> *signals.Baseline
}

func (d *directoryBaselines) Baseline(ctx context.Context, model, version string) (*signals.Baseline, error) {
	ref := modelfleet.ModelRef{Name: model, Version: version}
	if b, ok := d.cache.Load(ref); ok {
		return b.(*signals.Baseline), nil
	}
	rec, err := d.dir.Baseline(ctx, model, version)
	if err != nil {
		return nil, err
	}
	d.cache.Store(ref, rec.Baseline)
	return rec.Baseline, nil
}

// verdictSink turns verdicts into workflow signals.
type verdictSink struct {
	o       modelfleet.Orchestrator
	dir     MonitorDirectory
	retrain modelfleet.RetrainInput
	log     *slog.Logger
}

func (s *verdictSink) Notify(ctx context.Context, v drift.Verdict) error {
	log := s.log.With("site", v.Site, "model", v.Model, "version", v.Version)
	if !v.Breached() {
		log.Info("monitor: back within thresholds", "window_end", v.WindowEnd)
		return nil
	}
	log.Warn("monitor: breach", "reason", v.Reason, "requests", v.Requests)
	if err := s.toRelease(ctx, v); err != nil {
		return err
	}
	if v.Drifted() {
		return s.toRetrain(ctx, v)
	}
	return nil
}

// toRelease tells the releases the verdict concerns, if they run: the
// version's own release, and whichever release holds the model's lease at
// the site (a release of the workload feeding it, say). With none running
// there is nobody to tell.
func (s *verdictSink) toRelease(ctx context.Context, v drift.Verdict) error {
	ids := []string{modelfleet.ReleaseWorkflowID(modelfleet.ModelRef{Name: v.Model, Version: v.Version})}
	if ds, err := s.dir.Desired(ctx, v.Site, -1, 0); err == nil {
		if holder := ds.Models[v.Model].Release; holder != "" && holder != ids[0] {
			ids = append(ids, holder)
		}
	}
	sig := modelfleet.MonitorVerdict{
		ID: v.ID, Site: v.Site, Version: v.Version, Reason: v.Reason, WindowEnd: v.WindowEnd,
		DataDrift: v.DataDrift, PredictionDrift: v.PredictionDrift, QualityBreached: v.QualityBreached,
	}
	for _, id := range ids {
		err := s.o.SignalVerdict(ctx, id, sig)
		if err != nil && modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
			return fmt.Errorf("monitor: signal %s: %w", id, err)
		}
	}
	return nil
}

// toRetrain signal-with-starts the model's retraining workflow
// (Orchestrator.TriggerRetrain, as the gateway does for Azure ML's drift
// events); the verdict ID is the trigger's event ID, so a verdict notified
// twice (after a transient failure) is dropped there.
func (s *verdictSink) toRetrain(ctx context.Context, v drift.Verdict) error {
	coef := 0.0
	for _, f := range v.Features {
		coef = max(coef, f.Value)
	}
	t := modelfleet.RetrainTrigger{
		Reason: modelfleet.ReasonEdgeDrift, Source: "modelfleet-monitor/" + v.Site, EventID: v.ID, Model: v.Model,
		DriftCoefficient: coef, Monitor: strings.TrimSpace(v.Reason), Time: v.WindowEnd,
	}
	if _, err := s.o.TriggerRetrain(ctx, s.retrain, t); err != nil {
		return fmt.Errorf("monitor: trigger retraining of %s: %w", v.Model, err)
	}
	return nil
}

var _ drift.Sink = (*verdictSink)(nil)

// MonitorReport is what GET /api/monitor answers.
type MonitorReport struct {
	Stats    drift.Stats     `json:"stats"`
	Verdicts []drift.Verdict `json:"verdicts"`
}

// Handler serves GET /api/monitor: the monitor's counts and the latest
// verdict of every site, model and version it has seen.
func (m *Monitor) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httpjson.WriteError(w, modelfleet.Errorf(modelfleet.EINVALID, "method %s is not allowed: use GET", r.Method))
			return
		}
		vs := m.Verdicts()
		if vs == nil {
			vs = []drift.Verdict{}
		}
		httpjson.Write(w, http.StatusOK, MonitorReport{Stats: m.Stats(), Verdicts: vs})
	})
}
