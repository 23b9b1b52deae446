package simulate

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/modelfleet/modelfleet"
)

// Model is the model whose inputs this simulator produces.
const Model = "bearing-failure"

// DefaultTopic is where readings go; {site}, {line} and {machine} are filled.
const DefaultTopic = "factory/{site}/{line}/{machine}/telemetry"

// Config configures one simulated production line at a site.
type Config struct {
	Site     string
	Broker   string // mqtt://127.0.0.1:1883
	ClientID string // default "modelfleet-sim-<site>-<line>"
	Line     string // default "line-1"
	Machines int    // default 5
	// Rate is readings per second for the whole line, spread evenly over
	// its machines (default 10).
	Rate float64
	// HoursPerSecond is how fast bearings age: simulated operating hours
	// per real second (default 1).
	HoursPerSecond float64
	// BadRate is the share of readings sent malformed, incomplete,
	// out of range or with a skewed clock, to exercise dead-lettering.
	BadRate float64
	Topic   string // default DefaultTopic
	Seed    uint64 // default: random
	// OnPublish, if set, is called after each reading is acknowledged by
	// the broker with its send time (the benchmark's clock).
	OnPublish func(r *Reading, sent time.Time)
	// Now is the clock readings are stamped with (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Line is a running simulated line.
type Line struct {
	cfg      Config
	log      *slog.Logger
	machines []*Machine
	mu       []sync.Mutex // one per machine: Next mutates its state
	drift    atomic.Uint64
	sent     atomic.Int64
	bad      atomic.Int64
	failed   atomic.Int64
	up       atomic.Bool
}

// New checks cfg and builds the line's machines; Run starts publishing.
func New(cfg Config) (*Line, error) {
	if err := modelfleet.ValidateName("site id", cfg.Site); err != nil {
		return nil, err
	}
	if cfg.Line == "" {
		cfg.Line = "line-1"
	}
	if err := modelfleet.ValidateName("line", cfg.Line); err != nil {
		return nil, err
	}
	if cfg.Machines == 0 {
		cfg.Machines = 5
	}
	if cfg.Rate == 0 {
		cfg.Rate = 10
	}
	if cfg.HoursPerSecond == 0 {
		cfg.HoursPerSecond = 1
	}
	if cfg.Machines < 1 || cfg.Machines > 10000 || cfg.Rate < 0 || cfg.Rate > 1e6 || math.IsNaN(cfg.Rate) || cfg.BadRate < 0 || cfg.BadRate > 1 {
		return nil, fmt.Errorf("simulate: machines %d (1..10000), rate %v (0..1e6 per second) or bad rate %v (0..1) out of range", cfg.Machines, cfg.Rate, cfg.BadRate)
	}
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "modelfleet-sim-" + cfg.Site + "-" + cfg.Line
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Line{cfg: cfg, log: log.With("component", "simulator", "site", cfg.Site, "line", cfg.Line), mu: make([]sync.Mutex, cfg.Machines)}
	now := cfg.Now()
	// The line's process cycle reaches its machines in turn: their
	// impacts are spread evenly over it, so a minute of the line holds as
	// many as the next.
	first := rand.New(rand.NewPCG(cfg.Seed, math.MaxUint64)).Int64N(ImpactEvery)
	for i := range cfg.Machines {
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
		m := NewMachine(fmt.Sprintf("%s-m%02d", cfg.Line, i+1), rng, now)
		m.cycle = (first + int64(i)*ImpactEvery/int64(cfg.Machines)) % ImpactEvery
		l.machines = append(l.machines, m)
	}
	return l, nil
}

// Machines lists the machine IDs.
func (l *Line) Machines() []string {
	out := make([]string, len(l.machines))
	for i, m := range l.machines {
		out[i] = m.ID
	}
	return out
}

// SetDrift sets the drift knob: 0 is the training distribution.
func (l *Line) SetDrift(shift float64) { l.drift.Store(math.Float64bits(shift)) }

// Drift is the current shift.
func (l *Line) Drift() float64 { return math.Float64frombits(l.drift.Load()) }

// Fail starts (or with on false, repairs) a bearing failure on machine.
func (l *Line) Fail(machine string, on bool) error {
	for i, m := range l.machines {
		if m.ID == machine {
			l.mu[i].Lock()
			defer l.mu[i].Unlock()
			if on && m.failing.IsZero() {
				m.failing = l.cfg.Now()
			} else if !on {
				m.failing = time.Time{}
			}
			return nil
		}
	}
	return modelfleet.Errorf(modelfleet.ENOTFOUND, "machine %q is not on line %q; machines: %s", machine, l.cfg.Line, strings.Join(l.Machines(), ", "))
}

// Reading samples machine i now, as Run would publish it.
func (l *Line) Reading(i int) Reading {
	l.mu[i].Lock()
	defer l.mu[i].Unlock()
	return l.machines[i].Next(l.cfg.Now(), l.cfg.HoursPerSecond, l.Drift())
}

// topic is where machine m's readings go.
func (l *Line) topic(m *Machine) string {
	return strings.NewReplacer("{site}", l.cfg.Site, "{line}", l.cfg.Line, "{machine}", m.ID).Replace(l.cfg.Topic)
}

// Run connects to the broker and publishes at QoS 1 until ctx is done. Each
// machine publishes on its own schedule, in order, phases spread so the
// line's rate is even.
func (l *Line) Run(ctx context.Context) error {
	u, err := url.Parse(l.cfg.Broker)
	if err != nil || l.cfg.Broker == "" {
		return fmt.Errorf("simulate: broker url %q is invalid", l.cfg.Broker)
	}
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 20, CleanStartOnInitialConnection: true,
		ConnectTimeout:   5 * time.Second,
		ReconnectBackoff: autopaho.NewExponentialBackoff(100*time.Millisecond, 5*time.Second, 500*time.Millisecond, 2),
		OnConnectionUp:   func(*autopaho.ConnectionManager, *paho.Connack) { l.up.Store(true) },
		OnConnectionDown: func() bool { l.up.Store(false); return true },
		OnConnectError:   func(err error) { l.log.Warn("simulate: broker unreachable", "error", err) },
		ClientConfig:     paho.ClientConfig{ClientID: l.cfg.ClientID},
	})
	if err != nil {
		return err
	}
	if l.cfg.Rate == 0 {
		<-ctx.Done()
		<-cm.Done()
		return nil
	}
	period := time.Duration(float64(time.Second) * float64(len(l.machines)) / l.cfg.Rate)
	start := time.Now().Add(100 * time.Millisecond)
	var wg sync.WaitGroup
	for i := range l.machines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.runMachine(ctx, cm, i, start.Add(period*time.Duration(i)/time.Duration(len(l.machines))), period)
		}()
	}
	l.log.Info("simulate: publishing", "machines", len(l.machines), "rate", l.cfg.Rate)
	wg.Wait()
	<-cm.Done()
	return nil
}

// runMachine publishes machine i's readings at next, next+period, ...; a
// late tick publishes at once, so the rate holds on average.
func (l *Line) runMachine(ctx context.Context, cm *autopaho.ConnectionManager, i int, next time.Time, period time.Duration) {
	m := l.machines[i]
	topic := l.topic(m)
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r := l.Reading(i)
		payload, bad := l.encode(&r)
		sent := time.Now()
		if err := cm.AwaitConnection(ctx); err != nil {
			return
		}
		if _, err := cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload}); err != nil {
			l.failed.Add(1)
			if ctx.Err() == nil {
				l.log.Debug("simulate: publish failed", "error", err)
			}
		} else {
			l.sent.Add(1)
			if bad {
				l.bad.Add(1)
			}
			if l.cfg.OnPublish != nil {
				l.cfg.OnPublish(&r, sent)
			}
		}
		next = next.Add(period)
		t.Reset(time.Until(next))
	}
}

// encode writes a reading, or at BadRate one of the kinds of bad data a
// plant produces: garbage, a missing field, an impossible value, a clock
// that is an hour off.
func (l *Line) encode(r *Reading) ([]byte, bool) {
	if l.cfg.BadRate > 0 && rand.Float64() < l.cfg.BadRate {
		switch rand.IntN(4) {
		case 0:
			return []byte(`{"machine":"` + r.Machine + `","vibration_mm_s":`), true
		case 1:
			b, _ := json.Marshal(map[string]any{"machine": r.Machine, "ts": r.TS, "seq": r.Seq, "temperature_c": r.Temperature})
			return b, true
		case 2:
			r.Temperature = 900
		case 3:
			r.TS = l.cfg.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
		}
		b, _ := json.Marshal(r)
		return b, true
	}
	b, _ := json.Marshal(r)
	return b, false
}

// Stats are the line's counters.
type Stats struct {
	Site      string   `json:"site"`
	Line      string   `json:"line"`
	Model     string   `json:"model"`
	Machines  []string `json:"machines"`
	Failing   []string `json:"failing"`
	Rate      float64  `json:"rate"`
	Drift     float64  `json:"drift"`
	Connected bool     `json:"connected"`
	Sent      int64    `json:"sent"`
	SentBad   int64    `json:"sentBad"`
	Failed    int64    `json:"failed"`
}

// Stats reports what the line has done.
func (l *Line) Stats() Stats {
	st := Stats{Site: l.cfg.Site, Line: l.cfg.Line, Model: Model, Machines: l.Machines(), Failing: []string{}, Rate: l.cfg.Rate,
		Drift: l.Drift(), Connected: l.up.Load(), Sent: l.sent.Load(), SentBad: l.bad.Load(), Failed: l.failed.Load()}
	for i, m := range l.machines {
		l.mu[i].Lock()
		if !m.failing.IsZero() {
			st.Failing = append(st.Failing, m.ID)
		}
		l.mu[i].Unlock()
	}
	return st
}
