package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/edge"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/queue"
	"github.com/modelfleet/modelfleet/signals"
)

// SignalQueue is the name of the queue edge signals travel on: the
// embedded queue the gateway serves at /api/queues/signals, or the Service
// Bus queue of that name in Azure mode.
const SignalQueue = "signals"

// edgeSignals is the agent's half of the monitoring loop: the router
// reports every scored request to the aggregator, which closes one message
// per model version every interval into a bounded on-disk buffer; the
// sender drains it to the signal queue in order, whenever the cloud is
// reachable. The baselines the aggregator bins by are fetched when a
// version is applied and cached beside the models, so a site that restarts
// offline keeps measuring.
type edgeSignals struct {
	agg    *signals.Aggregator
	buf    *signals.Buffer
	send   *signals.Sender // Queue nil: no queue configured, metrics only
	dir    *fleet.Client   // nil: no directory, no baselines
	cache  string          // <data>/baselines
	router *edge.Router
	log    *slog.Logger

	mu  sync.Mutex
	set map[modelfleet.ModelRef]string // version -> baseline digest set on the aggregator
}

// baselineIndex is <data>/baselines/index.json: which baseline each served
// version counts by, so a restart can set them before the first request.
type baselineIndex map[string]string // "model/version" -> digest

func openSignals(cfg Config, agent *edge.Agent, log *slog.Logger) (*edgeSignals, error) {
	s := &edgeSignals{
		cache:  filepath.Join(cfg.DataDir, "baselines"),
		router: agent.Router(),
		log:    log.With("component", "signals"),
		set:    map[modelfleet.ModelRef]string{},
	}
	if err := os.MkdirAll(s.cache, 0o755); err != nil {
		return nil, fmt.Errorf("edge %s: signals: %w", cfg.SiteID, err)
	}
	buf, err := signals.OpenBuffer(filepath.Join(cfg.DataDir, "signals.db"), signals.BufferOptions{})
	if err != nil {
		return nil, fmt.Errorf("edge %s: signal buffer: %w", cfg.SiteID, err)
	}
	s.buf = buf
	s.agg = signals.NewAggregator(signals.AggregatorOptions{
		Site: cfg.SiteID, Interval: cfg.SignalInterval, Emit: buf.Add, Logger: s.log,
	})
	s.send = &signals.Sender{Buffer: buf, Logger: s.log}
	if err := s.router.Registry().Register(&signals.Collector{Aggregator: s.agg, Buffer: buf, Sender: s.send, Logger: s.log}); err != nil {
		buf.Close()
		return nil, fmt.Errorf("edge %s: signal metrics: %w", cfg.SiteID, err)
	}
	s.restore(agent.Served())
	s.router.SetObserver(s.agg)
	return s, nil
}

// connect points the loop at the cloud: the queue signal messages go to
// and the directory baselines come from. The embedded stack learns the
// gateway's address only after the sites opened, so this is separate from
// openSignals; it is called before run and before the converge loop.
// Every message is signed with the site's identity (id, or the one on
// disk), so the monitor can tell which site sent it on any transport.
func (s *edgeSignals) connect(cfg Config, id *Identity) {
	if s == nil {
		return
	}
	q := cfg.SignalSender
	if q == nil && cfg.GatewayURL != "" {
		q = &queue.Client{BaseURL: cfg.GatewayURL, Queue: SignalQueue, HTTPClient: cfg.GatewayClient}
	}
	if q != nil {
		q = s.signedQueue(cfg, id, q)
	}
	s.send.Queue = q
	if cfg.GatewayURL != "" {
		s.dir = &fleet.Client{BaseURL: cfg.GatewayURL, HTTPClient: cfg.GatewayClient}
	}
}

// run closes windows and sends them until ctx is done; the last partial
// window is closed and buffered on the way out.
func (s *edgeSignals) run(ctx context.Context) {
	if s == nil {
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = s.agg.Run(ctx)
	}()
	if s.send.Queue != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.send.Run(ctx)
		}()
	}
	wg.Wait()
	s.router.SetObserver(nil)
	if err := s.buf.Close(); err != nil {
		s.log.Warn("close signal buffer", "error", err)
	}
}

// restore sets the cached baselines of the versions the agent serves from
// disk, before it connects anywhere.
func (s *edgeSignals) restore(served []modelfleet.ServedModel) {
	idx := s.readIndex()
	for _, m := range served {
		digest := idx[m.Name+"/"+m.Version]
		if digest == "" {
			continue
		}
		b, err := s.cached(m.Name, m.Version, digest)
		if err != nil {
			s.log.Warn("cached baseline unusable; counting without it until the next apply", "model", m.Name, "version", m.Version, "error", err)
			continue
		}
		s.setBaseline(m.Name, m.Version, b)
	}
}

// track makes the aggregator bin each applied version by its baseline and
// forget versions the site no longer serves. A baseline that cannot be had
// is logged: the version is still counted (requests, errors, latency),
// only its histograms wait for the next apply.
func (s *edgeSignals) track(ctx context.Context, model string, versions []modelfleet.DesiredVersion) {
	if s == nil {
		return
	}
	keep := map[string]bool{}
	for _, v := range versions {
		keep[v.Version] = true
		if v.Baseline == "" {
			continue
		}
		if !modelfleet.ValidDigest(v.Baseline) {
			s.log.Warn("desired state names an invalid baseline digest; ignored", "model", model, "version", v.Version)
			continue
		}
		ref := modelfleet.ModelRef{Name: model, Version: v.Version}
		s.mu.Lock()
		have := s.set[ref]
		s.mu.Unlock()
		if have == v.Baseline {
			continue
		}
		b, err := s.fetch(ctx, model, v.Version, v.Baseline)
		if err != nil {
			s.log.Warn("baseline unavailable; counting without histograms", "model", model, "version", v.Version, "error", err)
			continue
		}
		s.setBaseline(model, v.Version, b)
	}
	s.mu.Lock()
	var gone []modelfleet.ModelRef
	for ref := range s.set {
		if ref.Name == model && !keep[ref.Version] {
			gone = append(gone, ref)
			delete(s.set, ref)
		}
	}
	s.mu.Unlock()
	for _, ref := range gone {
		s.agg.Forget(ref.Name, ref.Version)
	}
	if len(gone) > 0 {
		s.writeIndex()
	}
}

func (s *edgeSignals) setBaseline(model, version string, b *signals.Baseline) {
	s.agg.SetBaseline(model, version, featureNames(b), b)
	s.mu.Lock()
	s.set[modelfleet.ModelRef{Name: model, Version: version}] = b.Digest()
	s.mu.Unlock()
	s.writeIndex()
}

// featureNames are the baseline's features in order: the validation step
// builds the baseline from the data set read in the model's feature order,
// which is the order of the rows the router scores.
func featureNames(b *signals.Baseline) []string {
	names := make([]string, len(b.Features))
	for i, f := range b.Features {
		names[i] = f.Name
	}
	return names
}

// fetch returns a version's baseline from the cache or the directory,
// checked against the digest the desired state names.
func (s *edgeSignals) fetch(ctx context.Context, model, version, digest string) (*signals.Baseline, error) {
	if b, err := s.cached(model, version, digest); err == nil {
		return b, nil
	}
	if s.dir == nil {
		return nil, errors.New("no site directory configured")
	}
	rec, err := s.dir.Baseline(ctx, model, version)
	if err != nil {
		return nil, err
	}
	// The digest of the content as decoded, not the one the record
	// claims: the desired state's digest is what the release signed.
	if rec.Baseline == nil || rec.Baseline.Digest() != digest {
		got := rec.Digest
		if rec.Baseline != nil {
			got = rec.Baseline.Digest()
		}
		return nil, fmt.Errorf("the directory's baseline is %s, the desired state names %s", got, digest)
	}
	buf, err := json.Marshal(rec.Baseline)
	if err != nil {
		return nil, err
	}
	if err := edge.WriteFileAtomic(s.cacheFile(digest), buf); err != nil {
		s.log.Warn("cache baseline", "error", err)
	}
	return rec.Baseline, nil
}

func (s *edgeSignals) cached(model, version, digest string) (*signals.Baseline, error) {
	if !modelfleet.ValidDigest(digest) {
		return nil, fmt.Errorf("baseline digest %q of %s:%s is invalid", digest, model, version)
	}
	buf, err := os.ReadFile(s.cacheFile(digest))
	if err != nil {
		return nil, err
	}
	b, err := signals.DecodeBaseline(buf)
	if err != nil {
		return nil, err
	}
	if b.Digest() != digest {
		return nil, fmt.Errorf("cached baseline of %s:%s is %s, want %s", model, version, b.Digest(), digest)
	}
	return b, nil
}

func (s *edgeSignals) cacheFile(digest string) string {
	return filepath.Join(s.cache, strings.TrimPrefix(digest, "sha256:")+".json")
}

func (s *edgeSignals) readIndex() baselineIndex {
	idx := baselineIndex{}
	buf, err := os.ReadFile(filepath.Join(s.cache, "index.json"))
	if err == nil {
		if err := json.Unmarshal(buf, &idx); err != nil {
			s.log.Warn("baseline index unreadable; rebuilt on the next apply", "error", err)
			return baselineIndex{}
		}
	}
	return idx
}

func (s *edgeSignals) writeIndex() {
	s.mu.Lock()
	idx := baselineIndex{}
	for ref, d := range s.set {
		idx[ref.Name+"/"+ref.Version] = d
	}
	s.mu.Unlock()
	buf, err := json.Marshal(idx)
	if err == nil {
		err = edge.WriteFileAtomic(filepath.Join(s.cache, "index.json"), buf)
	}
	if err != nil {
		s.log.Warn("write baseline index", "error", err)
	}
}
