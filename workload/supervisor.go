package workload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// SupervisorConfig configures the supervision of one workload at one site.
type SupervisorConfig struct {
	Site   string
	Broker string
	Router string
	APIKey string
	Scorer Scorer // optional: replaces the router (tests, benchmarks)
	// SessionExpiry, MaxDisconnected: see Config.
	SessionExpiry   time.Duration
	MaxDisconnected time.Duration
	// MinBackoff and MaxBackoff bound the wait before a restart (doubling
	// from Min on each failure in a row); defaults 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// StableAfter is how long an instance must run before its restart
	// counts as a first failure again (default 30s).
	StableAfter time.Duration
	// HealthInterval is how often health is checked (default 2s);
	// Unhealthy is how many failed checks in a row restart it (default 3).
	HealthInterval time.Duration
	Unhealthy      int
	StartTimeout   time.Duration // default 15s
	Logger         *slog.Logger

	// launch and sleep are replaced in tests.
	launch func(Config) (instance, error)
	sleep  func(context.Context, time.Duration) error
}

// instance is a running workload version (*Runtime).
type instance interface {
	Start(context.Context) error
	Ready(context.Context) error
	Drain(context.Context) error
	Close()
	Done() <-chan struct{}
	Health() Health
	Manifest() *spec.Manifest
}

// Supervisor keeps one workload running at a site: it starts it, checks
// its health, restarts it with backoff, and swaps versions without losing a
// message: every version uses the same MQTT client ID and so the same
// persistent session; the old version drains (finishes and acknowledges what
// it holds, leaves the rest unacknowledged) and disconnects, then the new one
// resumes the session and the broker delivers everything from there.
type Supervisor struct {
	cfg     SupervisorConfig
	log     *slog.Logger
	Record  *Record
	Metrics *Metrics
	swaps   chan swapReq

	mu       sync.Mutex
	cur      instance
	prog     *Program
	state    string
	restarts int
	lastErr  string
	clientID string
}

type swapReq struct {
	ctx   context.Context
	prog  Program
	reply chan error
}

// Supervisor states.
const (
	StateStarting   = "starting"
	StateRunning    = "running"
	StateRestarting = "restarting"
	StateStopped    = "stopped"
)

// NewSupervisor returns a supervisor; Run starts the workload.
func NewSupervisor(cfg SupervisorConfig) *Supervisor {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	if cfg.StableAfter <= 0 {
		cfg.StableAfter = 30 * time.Second
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 2 * time.Second
	}
	if cfg.Unhealthy <= 0 {
		cfg.Unhealthy = 3
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 15 * time.Second
	}
	if cfg.launch == nil {
		cfg.launch = func(c Config) (instance, error) { return New(c) }
	}
	if cfg.sleep == nil {
		cfg.sleep = modelfleet.Sleep
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Supervisor{cfg: cfg, log: log.With("component", "workload-supervisor", "site", cfg.Site),
		Metrics: NewMetrics(), swaps: make(chan swapReq), state: StateStarting}
}

// backoff is the wait before restart number n (1, 2, ...) in a row.
func (s *Supervisor) backoff(n int) time.Duration {
	d := s.cfg.MinBackoff
	for i := 1; i < n && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.cfg.MaxBackoff)
}

// Run supervises p until ctx is done, then drains the running version (its
// session stays on the broker for the next start).
func (s *Supervisor) Run(ctx context.Context, p Program) error {
	if err := p.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	s.prog, s.clientID = &p, ClientID(s.cfg.Site, p.Manifest.Name)
	if s.Record == nil {
		s.Record = NewRecord(p.Manifest.Output.Record)
	}
	s.mu.Unlock()
	failures := 0
	for {
		inst, err := s.start(ctx, *s.program(), nil)
		if err == nil {
			began := time.Now()
			err = s.watch(ctx, &inst)
			if ctx.Err() != nil {
				s.stop(inst)
				return nil
			}
			if time.Since(began) >= s.cfg.StableAfter {
				failures = 0
			}
		}
		if ctx.Err() != nil {
			s.setState(StateStopped, nil, "")
			return nil
		}
		failures++
		s.Metrics.restarts.WithLabelValues(s.program().Manifest.Name).Inc()
		wait := s.backoff(failures)
		s.setState(StateRestarting, nil, err.Error())
		s.log.Warn("workload: restarting", "workload", s.program().Manifest.Ref(), "error", err, "in", wait, "failures", failures)
		if err := s.waitOrSwap(ctx, wait); err != nil {
			s.setState(StateStopped, nil, "")
			return nil
		}
	}
}

// waitOrSwap sleeps out a backoff; a swap arriving meanwhile replaces the
// program to restart with (it is answered once that start succeeds or fails).
func (s *Supervisor) waitOrSwap(ctx context.Context, d time.Duration) error {
	done := make(chan error, 1)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { done <- s.cfg.sleep(sctx, d) }()
	for {
		select {
		case err := <-done:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			_ = err
			return nil
		case req := <-s.swaps:
			if err := s.checkSwap(req.prog); err != nil {
				req.reply <- err
				continue
			}
			s.mu.Lock()
			s.prog = &req.prog
			s.mu.Unlock()
			req.reply <- nil
			cancel()
		}
	}
}

// start launches p and waits until it consumes.
func (s *Supervisor) start(ctx context.Context, p Program, unsubscribe []string) (instance, error) {
	s.setState(StateStarting, nil, "")
	inst, err := s.cfg.launch(s.config(p, unsubscribe))
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	if err := inst.Start(sctx); err != nil {
		inst.Close()
		return nil, err
	}
	s.setState(StateRunning, inst, "")
	s.log.Info("workload: running", "workload", p.Manifest.Ref())
	return inst, nil
}

func (s *Supervisor) config(p Program, unsubscribe []string) Config {
	return Config{Site: s.cfg.Site, Program: p, Broker: s.cfg.Broker, ClientID: s.clientID,
		SessionExpiry: s.cfg.SessionExpiry, MaxDisconnected: s.cfg.MaxDisconnected,
		Router: s.cfg.Router, APIKey: s.cfg.APIKey, Scorer: s.cfg.Scorer,
		Record: s.Record, Metrics: s.Metrics, Unsubscribe: unsubscribe, Logger: s.log}
}

// watch returns why the instance must be restarted, or nil when ctx ends.
// A swap replaces *inst.
func (s *Supervisor) watch(ctx context.Context, inst *instance) error {
	t := time.NewTicker(s.cfg.HealthInterval)
	defer t.Stop()
	bad := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-(*inst).Done():
			h := (*inst).Health()
			return fmt.Errorf("workload %s stopped: %s", (*inst).Manifest().Ref(), h.Reason)
		case <-t.C:
			h := (*inst).Health()
			if h.Healthy {
				bad = 0
				continue
			}
			if bad++; bad >= s.cfg.Unhealthy {
				(*inst).Close()
				return fmt.Errorf("workload %s unhealthy: %s", (*inst).Manifest().Ref(), h.Reason)
			}
		case req := <-s.swaps:
			next, err := s.swap(req, *inst)
			if next != nil {
				*inst = next
				bad = 0
			}
			req.reply <- err
			if next == nil && err != nil && errors.Is(err, errOldGone) {
				return err
			}
		}
	}
}

var errOldGone = errors.New("no version is running")

func (s *Supervisor) checkSwap(p Program) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if cur := s.program(); cur != nil && p.Manifest.Name != cur.Manifest.Name {
		return fmt.Errorf("cannot swap workload %q to %q: a site's workload keeps its name (and MQTT session); versions change", cur.Manifest.Name, p.Manifest.Name)
	}
	return nil
}

// swap replaces old with req.prog: the new version must be ready (its
// router serves its model) before the old one drains; the new one then
// resumes the session. If it cannot, the old program is started again.
// It returns the instance now running (nil if none) and the swap's error.
func (s *Supervisor) swap(req swapReq, old instance) (instance, error) {
	from, to := old.Manifest().Ref(), req.prog.Manifest.Ref()
	if err := s.checkSwap(req.prog); err != nil {
		s.Metrics.swaps.WithLabelValues(req.prog.Manifest.Name, "refused").Inc()
		return nil, err
	}
	unsub := removed(old.Manifest(), &req.prog.Manifest, s.cfg.Site)
	next, err := s.cfg.launch(s.config(req.prog, unsub))
	if err == nil {
		rctx, cancel := context.WithTimeout(req.ctx, s.cfg.StartTimeout)
		err = next.Ready(rctx)
		cancel()
		if err != nil {
			next.Close() // it never started: this frees its module instances
		}
	}
	if err != nil {
		s.Metrics.swaps.WithLabelValues(req.prog.Manifest.Name, "refused").Inc()
		return nil, fmt.Errorf("workload %s not ready, %s keeps running: %w", to, from, err)
	}
	dctx, cancel := context.WithTimeout(context.Background(), s.cfg.StartTimeout)
	derr := old.Drain(dctx)
	cancel()
	if derr != nil {
		s.log.Warn("workload: drain was not clean; unacknowledged messages are redelivered", "workload", from, "error", derr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.StartTimeout)
	err = next.Start(sctx)
	cancel()
	if err == nil {
		s.mu.Lock()
		s.prog = &req.prog
		s.mu.Unlock()
		s.setState(StateRunning, next, "")
		s.Metrics.swaps.WithLabelValues(req.prog.Manifest.Name, "ok").Inc()
		s.log.Info("workload: swapped", "from", from, "to", to)
		return next, nil
	}
	next.Close()
	s.Metrics.swaps.WithLabelValues(req.prog.Manifest.Name, "failed").Inc()
	back, berr := s.start(context.Background(), *s.program(), nil)
	if berr != nil {
		return nil, fmt.Errorf("workload %s did not start (%v) and %s did not come back: %w", to, err, from, errors.Join(errOldGone, berr))
	}
	return back, fmt.Errorf("workload %s did not start, %s runs again: %w", to, from, err)
}

// removed lists the old version's topic filters the new one drops.
func removed(old, next *spec.Manifest, site string) []string {
	var out []string
	for _, t := range old.Input.Topics {
		if !slices.Contains(next.Input.Topics, t) {
			out = append(out, spec.Topic(t, site))
		}
	}
	return out
}

// Swap replaces the running version with p and returns once p consumes,
// or with an error while the previous version keeps (or again) running.
func (s *Supervisor) Swap(ctx context.Context, p Program) error {
	reply := make(chan error, 1)
	select {
	case s.swaps <- swapReq{ctx: ctx, prog: p, reply: reply}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Supervisor) stop(inst instance) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StartTimeout)
	defer cancel()
	if err := inst.Drain(ctx); err != nil {
		s.log.Warn("workload: drain on stop was not clean", "error", err)
	}
	s.setState(StateStopped, nil, "")
}

func (s *Supervisor) program() *Program {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prog
}

func (s *Supervisor) setState(state string, inst instance, lastErr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state, s.cur = state, inst
	if state == StateRestarting {
		s.restarts++
	}
	if lastErr != "" {
		s.lastErr = lastErr
	}
}
