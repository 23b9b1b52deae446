package workload

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// Config is where a workload version runs: the site, its broker and router.
type Config struct {
	Site    string
	Program Program
	// Broker is the MQTT broker URL, e.g. mqtt://127.0.0.1:1883.
	Broker string
	// ClientID is the MQTT client ID: stable across versions, so every
	// version resumes the same persistent session. Default
	// "modelfleet-<site>-<workload name>".
	ClientID string
	// SessionExpiry is how long the broker keeps the session (and queues
	// QoS 1 messages) while no version is connected. Default one hour.
	SessionExpiry time.Duration
	// Router and APIKey reach the site's inference router; Scorer, when
	// set, replaces them (tests, the benchmark's in-process floor).
	Router string
	APIKey string
	Scorer Scorer
	// Record and Metrics are shared across versions; nil makes new ones.
	Record  *Record
	Metrics *Metrics
	// Unsubscribe lists topic filters of a previous version this one no
	// longer reads; they are removed from the session once it subscribed.
	Unsubscribe []string
	// MaxDisconnected is how long the runtime may be without its broker
	// before its health says so (and a supervisor restarts it). Default 30s.
	MaxDisconnected time.Duration
	Now             func() time.Time
	Logger          *slog.Logger
}

// ackInterval is how often manual acknowledgements are flushed to the
// broker (in receive order, as MQTT requires).
const ackInterval = 5 * time.Millisecond

// maxMachines bounds the per-machine state a runtime keeps, so a stream of
// made-up machine IDs cannot exhaust memory.
const maxMachines = 100_000

// Runtime runs one workload version: MQTT in, features, model, decision out.
// Create it with New, then Start; Drain hands its session over cleanly.
type Runtime struct {
	cfg  Config
	prog *Program
	log  *slog.Logger
	m    *versionMetrics
	in   []chan job
	cm   *autopaho.ConnectionManager // the session: receives and acknowledges
	out  *autopaho.ConnectionManager // publishes decisions and dead letters

	ctx    context.Context // the connection's lifetime
	cancel context.CancelFunc

	gate       sync.RWMutex // held (read) while a message is handed to a worker
	draining   bool
	workers    sync.WaitGroup
	machines   atomic.Int64
	subscribed chan struct{}
	subOnce    sync.Once
	done       chan struct{}
	doneOnce   sync.Once
	err        atomic.Pointer[error]

	connected      atomic.Bool
	downSince      atomic.Int64 // unix nanos, 0 while connected
	lastMessage    atomic.Int64
	busySince      []atomic.Int64 // per worker, 0 while idle
	processed      atomic.Uint64
	deadLetters    atomic.Uint64
	failing        atomic.Int32 // consecutive score failures: fail fast past a few
	workersStarted bool         // the workers own codes from then on
	codes          []code       // per worker, made by New; a worker replaces its own after a fault
	faults         atomic.Uint64
	lastFault      atomic.Pointer[faultAt]
}

type faultAt struct {
	at  time.Time
	msg string
}

type job struct {
	pub      *paho.Publish
	client   *paho.Client
	received time.Time
}

// New checks the configuration and prepares a runtime; nothing connects yet.
func New(cfg Config) (*Runtime, error) {
	prog := cfg.Program
	if err := prog.Validate(); err != nil {
		return nil, err
	}
	if err := modelfleet.ValidateName("site id", cfg.Site); err != nil {
		return nil, err
	}
	if _, err := url.Parse(cfg.Broker); err != nil || cfg.Broker == "" {
		return nil, fmt.Errorf("workload %s: broker url %q is invalid", prog.Manifest.Ref(), cfg.Broker)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = ClientID(cfg.Site, prog.Manifest.Name)
	}
	if cfg.SessionExpiry <= 0 {
		cfg.SessionExpiry = time.Hour
	}
	if cfg.MaxDisconnected <= 0 {
		cfg.MaxDisconnected = 30 * time.Second
	}
	if cfg.Scorer == nil {
		if cfg.Router == "" {
			return nil, fmt.Errorf("workload %s: a router url (or a scorer) is required", prog.Manifest.Ref())
		}
		cfg.Scorer = NewRouterScorer(cfg.Router, cfg.APIKey, prog.Manifest.Scaling.Workers)
	}
	if cfg.Record == nil {
		cfg.Record = NewRecord(prog.Manifest.Output.Record)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Runtime{
		cfg: cfg, prog: &prog, m: cfg.Metrics.version(prog.Manifest.Name, prog.Manifest.Version),
		log:        log.With("component", "workload", "site", cfg.Site, "workload", prog.Manifest.Ref()),
		subscribed: make(chan struct{}), done: make(chan struct{}),
		busySince: make([]atomic.Int64, prog.Manifest.Scaling.Workers),
	}
	r.downSince.Store(time.Now().UnixNano())
	// Instances start here, so a module that cannot start (wrong ABI,
	// more memory than its limit, a trap in its initialisation) fails the
	// launch, before a supervisor drains the version running now.
	for range prog.Manifest.Scaling.Workers {
		c, err := r.newCode(context.Background())
		if err != nil {
			r.closeCodes()
			return nil, fmt.Errorf("workload %s: %w", prog.Manifest.Ref(), err)
		}
		r.codes = append(r.codes, c)
	}
	return r, nil
}

// newCode is a worker's code: the built-in preparers, or an instance of
// the module.
func (r *Runtime) newCode(ctx context.Context) (code, error) {
	if r.prog.Module == nil {
		return &builtin{prog: r.prog, machines: map[string]Preparer{}}, nil
	}
	inst, err := r.prog.Module.Instantiate(ctx, &r.prog.Manifest)
	if err != nil {
		return nil, err
	}
	return sandboxed{inst}, nil
}

// closeCodes closes the instances of workers that never started.
func (r *Runtime) closeCodes() {
	for _, c := range r.codes {
		c.close()
	}
	r.codes = nil
}

// faultWindow is how long after a module fault the runtime reports itself
// unhealthy.
const faultWindow = time.Minute

func (r *Runtime) recordFault(f *ModuleFault) {
	r.faults.Add(1)
	r.lastFault.Store(&faultAt{at: time.Now(), msg: f.Error()})
	r.log.Warn("workload: module fault; the message is dead-lettered and the instance replaced", "reason", f.Reason, "error", f.Message)
}

// ClientID is the stable MQTT client ID of a workload at a site.
func ClientID(site, workload string) string { return "modelfleet-" + site + "-" + workload }

// Manifest is the version's manifest, defaults filled.
func (r *Runtime) Manifest() *spec.Manifest { return &r.prog.Manifest }

// Ready reports whether the version can score: its router serves the
// model. A supervisor swaps to a version only once it is ready.
func (r *Runtime) Ready(ctx context.Context) error {
	if rs, ok := r.cfg.Scorer.(interface {
		Ready(context.Context, string) error
	}); ok {
		return rs.Ready(ctx, r.prog.Manifest.Model)
	}
	return nil
}

// Start connects with the persistent session, subscribes (QoS 1) and
// processes until Drain or Close. It returns once the subscription is
// acknowledged, so the caller knows the version is consuming.
//
// Outputs go out on a second connection. mochi-mqtt v2.7.9 shares one
// packet-ID space between what a client sends and what it is sent: a PUBLISH
// from the client whose ID equals that of a message in flight to it deletes
// that message from the session (server.go, processPublish), so a decision
// published on the session's own connection could silently drop an input
// that a crash then never redelivers. The session's connection therefore
// only receives, acknowledges and subscribes.
func (r *Runtime) Start(ctx context.Context) error {
	u, _ := url.Parse(r.cfg.Broker)
	man := &r.prog.Manifest
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.in = make([]chan job, man.Scaling.Workers)
	for i := range r.in {
		r.in[i] = make(chan job, man.Scaling.Queue)
	}
	backoff := autopaho.NewExponentialBackoff(100*time.Millisecond, 5*time.Second, 500*time.Millisecond, 2)
	onErr := func(err error) { r.log.Warn("workload: broker unreachable", "error", err) }
	out, err := autopaho.NewConnection(r.ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 20, CleanStartOnInitialConnection: true,
		ConnectTimeout: 5 * time.Second, ReconnectBackoff: backoff, OnConnectError: onErr,
		ClientConfig: paho.ClientConfig{ClientID: r.cfg.ClientID + "-out"},
	})
	if err == nil {
		err = out.AwaitConnection(ctx)
	}
	if err != nil {
		r.cancel()
		return fmt.Errorf("workload %s: output connection to %s: %w", man.Ref(), r.cfg.Broker, err)
	}
	r.out = out
	cc := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     20,
		CleanStartOnInitialConnection: false, // resume the session every version shares
		SessionExpiryInterval:         uint32(r.cfg.SessionExpiry / time.Second),
		ConnectTimeout:                5 * time.Second,
		ReconnectBackoff:              backoff,
		OnConnectionUp:                r.connectionUp,
		OnConnectionDown:              r.connectionDown,
		OnConnectError:                onErr,
		// No Receive Maximum on purpose: with one, mochi-mqtt v2.7.9 takes
		// its flow-control path, whose Inflight.NextImmediate read-locks
		// twice and deadlocks the broker when a publisher writes between
		// the two locks (seen under load here). Without it the broker's
		// per-session bound (MaxQueued) bounds what is unacknowledged, and
		// paho's receive buffer (65535) never fills: it cannot hold more.
		ClientConfig: paho.ClientConfig{
			ClientID:                   r.cfg.ClientID,
			EnableManualAcknowledgment: true,
			SendAcksInterval:           ackInterval,
			OnPublishReceived:          []func(paho.PublishReceived) (bool, error){r.receive},
		},
	}
	cm, err := autopaho.NewConnection(r.ctx, cc)
	if err != nil {
		r.cancel()
		<-out.Done()
		return fmt.Errorf("workload %s: %w", man.Ref(), err)
	}
	// Workers start once r.cm is set: a resumed session delivers at once,
	// and what arrives meanwhile waits in the queues.
	r.cm = cm
	r.workersStarted = true
	for i := range r.in {
		r.workers.Add(1)
		go r.work(i)
	}
	select {
	case <-r.subscribed:
		r.log.Info("workload: consuming", "client_id", r.cfg.ClientID, "topics", r.topics())
		return nil
	case <-ctx.Done():
		r.Close()
		return fmt.Errorf("workload %s: not subscribed to %s: %w", man.Ref(), r.cfg.Broker, ctx.Err())
	}
}

func (r *Runtime) topics() []string {
	out := make([]string, len(r.prog.Manifest.Input.Topics))
	for i, t := range r.prog.Manifest.Input.Topics {
		out[i] = spec.Topic(t, r.cfg.Site)
	}
	return out
}

// connectionUp (re)subscribes: harmless on a resumed session, required on a
// new one. It must not block autopaho, so it subscribes in a goroutine.
func (r *Runtime) connectionUp(cm *autopaho.ConnectionManager, ca *paho.Connack) {
	r.connected.Store(true)
	r.downSince.Store(0)
	r.m.connected.Set(1)
	go func() {
		sub := &paho.Subscribe{}
		for _, t := range r.topics() {
			sub.Subscriptions = append(sub.Subscriptions, paho.SubscribeOptions{Topic: t, QoS: 1})
		}
		// mochi-mqtt refuses a SUBSCRIBE whose packet ID equals that of a
		// message in flight to the client (the same shared ID space): on a
		// resumed session that happens, so retry; paho takes the next ID.
		for attempt := 1; ; attempt++ {
			ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
			_, err := cm.Subscribe(ctx, sub)
			if err == nil && len(r.cfg.Unsubscribe) > 0 {
				if _, uerr := cm.Unsubscribe(ctx, &paho.Unsubscribe{Topics: r.cfg.Unsubscribe}); uerr != nil {
					r.log.Warn("workload: unsubscribing the previous version's topics failed", "error", uerr)
				}
			}
			cancel()
			if err == nil {
				break
			}
			if r.ctx.Err() != nil || !r.connected.Load() {
				return // closed, or the next connectionUp subscribes
			}
			if attempt%10 == 0 {
				r.log.Warn("workload: subscribe failed; retrying", "error", err, "attempts", attempt)
			}
			time.Sleep(10 * time.Millisecond)
		}
		r.subOnce.Do(func() { close(r.subscribed) })
		r.log.Debug("workload: subscribed", "session_present", ca.SessionPresent)
	}()
}

func (r *Runtime) connectionDown() bool {
	r.connected.Store(false)
	r.downSince.Store(time.Now().UnixNano())
	r.m.connected.Set(0)
	r.log.Warn("workload: broker connection lost; reconnecting with the same session")
	return true
}

// receive hands a message to the worker of its topic (one machine's stream
// stays in order). While draining it leaves the message unacknowledged: the
// broker redelivers it to the next version on the same session.
func (r *Runtime) receive(pr paho.PublishReceived) (bool, error) {
	r.gate.RLock()
	defer r.gate.RUnlock()
	if r.draining {
		return true, nil
	}
	h := fnv.New32a()
	h.Write([]byte(pr.Packet.Topic))
	r.in[h.Sum32()%uint32(len(r.in))] <- job{pub: pr.Packet, client: pr.Client, received: time.Now()}
	return true, nil
}

func (r *Runtime) work(i int) {
	defer r.workers.Done()
	w := &worker{r: r, id: i, code: r.codes[i], machines: map[string]bool{}, row: make([]float64, len(r.prog.Manifest.Features))}
	defer func() {
		if w.code != nil {
			w.code.close()
		}
	}()
	for j := range r.in[i] {
		r.busySince[i].Store(time.Now().UnixNano())
		w.handle(j)
		r.busySince[i].Store(0)
	}
}

// Drain hands the session over: it stops taking messages, finishes those it
// has, flushes their acknowledgements, and disconnects normally, which keeps
// the session (and every message not yet acknowledged) for the next version.
func (r *Runtime) Drain(ctx context.Context) error {
	stopped := make(chan struct{})
	go func() { r.stopWorkers(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		// A worker waits on a broker that does not answer: give up the
		// clean hand-over; what it held is redelivered.
		r.cancel()
		<-stopped
	}
	// Acknowledgements go out every ackInterval; give the last batch time.
	select {
	case <-time.After(4 * ackInterval):
	case <-ctx.Done():
	}
	var err error
	if r.cm != nil {
		err = r.cm.Disconnect(ctx)
		select {
		case <-r.cm.Done():
		case <-ctx.Done():
		}
	}
	if r.out != nil {
		_ = r.out.Disconnect(ctx)
	}
	r.finish(nil)
	r.log.Info("workload: drained", "processed", r.processed.Load())
	return err
}

// Close stops at once without a clean hand-over: what was not acknowledged
// is redelivered to the next holder of the session.
func (r *Runtime) Close() {
	if r.cancel != nil {
		r.cancel()
	}
	r.stopWorkers()
	if !r.workersStarted {
		r.closeCodes()
	}
	if r.cm != nil {
		<-r.cm.Done()
	}
	if r.out != nil {
		<-r.out.Done()
	}
	r.finish(nil)
}

func (r *Runtime) stopWorkers() {
	r.gate.Lock()
	if !r.draining {
		r.draining = true
		for _, c := range r.in {
			close(c)
		}
	}
	r.gate.Unlock()
	r.workers.Wait()
}

func (r *Runtime) finish(err error) {
	r.doneOnce.Do(func() {
		if err != nil {
			r.err.Store(&err)
		}
		r.m.connected.Set(0)
		if r.cancel != nil {
			r.cancel()
		}
		close(r.done)
	})
}

// Done is closed once the runtime stopped.
func (r *Runtime) Done() <-chan struct{} { return r.done }

// Err is why the runtime stopped on its own, if it did.
func (r *Runtime) Err() error {
	if p := r.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Health is a runtime's state as GET /healthz reports it.
type Health struct {
	Workload     string    `json:"workload"`
	Version      string    `json:"version"`
	Model        string    `json:"model"`
	Healthy      bool      `json:"healthy"`
	Reason       string    `json:"reason,omitempty"`
	Connected    bool      `json:"connected"`
	LastMessage  time.Time `json:"lastMessage,omitzero"`
	Processed    uint64    `json:"processed"`
	DeadLettered uint64    `json:"deadLettered"`
}

// stuckAfter is how long one message may take before the runtime counts as
// stuck (a score call is bounded far below it).
const stuckAfter = 30 * time.Second

// Health reports whether the runtime is doing its job: connected (or only
// briefly not) and no worker stuck on one message.
func (r *Runtime) Health() Health {
	man := &r.prog.Manifest
	h := Health{Workload: man.Name, Version: man.Version, Model: man.Model, Healthy: true,
		Connected: r.connected.Load(), Processed: r.processed.Load(), DeadLettered: r.deadLetters.Load()}
	if t := r.lastMessage.Load(); t != 0 {
		h.LastMessage = time.Unix(0, t).UTC()
	}
	now := time.Now()
	select {
	case <-r.done:
		h.Healthy, h.Reason = false, "stopped"
		if err := r.Err(); err != nil {
			h.Reason = "stopped: " + err.Error()
		}
		return h
	default:
	}
	if d := r.downSince.Load(); d != 0 && now.Sub(time.Unix(0, d)) > r.cfg.MaxDisconnected {
		h.Healthy, h.Reason = false, fmt.Sprintf("not connected to the broker for %s", now.Sub(time.Unix(0, d)).Round(time.Second))
	}
	if f := r.lastFault.Load(); f != nil && now.Sub(f.at) < faultWindow {
		h.Healthy, h.Reason = false, fmt.Sprintf("module fault %s ago (%d in all): %s", now.Sub(f.at).Round(time.Second), r.faults.Load(), f.msg)
	}
	for i := range r.busySince {
		if b := r.busySince[i].Load(); b != 0 && now.Sub(time.Unix(0, b)) > stuckAfter {
			h.Healthy, h.Reason = false, fmt.Sprintf("worker %d stuck on one message for %s", i, now.Sub(time.Unix(0, b)).Round(time.Second))
		}
	}
	return h
}
