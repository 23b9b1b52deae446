package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/modelfleet/modelfleet/simulate"
	"github.com/modelfleet/modelfleet/workload"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// The workload runner as a process of its own (-workloads, on by
// default). The run hosts the shop floor's MQTT broker (workload.Broker,
// as `modelfleet dev` does; it is not killed) and, per site, a simulated
// line publishing readings at QoS 1 and `modelfleet workload run` — the
// example's manifest, its built-in code, scoring at the site's router —
// as its own process. The chaos SIGKILLs a runner in turn with the other
// processes (kind "workload"), and the agents' kills make its scores fail
// meanwhile. Every outcome the runners publish (decisions and dead
// letters, each naming the reading's machine and seq) is read from the
// broker by the run, and at the end, the lines stopped and the runners
// drained:
//
//   - every reading the broker acknowledged has an outcome
//     (workload_lost=0): the runner acknowledges a message only once its
//     outcome is on the broker, and its session (persistent, QoS 1) keeps
//     what it had not acknowledged, and what arrived while it was down,
//     for the next start;
//   - a reading whose runner published two or more outcomes (as the
//     broker accepted them, outcomeTap) is allowed only when that runner
//     was killed, or one of its connections dropped, between them (a
//     redelivery: at-least-once); workload_duplicates counts those,
//     workload_extra_duplicates the others, which must be 0;
//   - readings published while a runner was down were decided after it
//     came back (workload_resumed: the session resumed).
//
// The run's observer has a persistent session of its own (an hour), so an
// outcome published while its connection is down reaches it when it is
// back. Before, its session ended with its connection, and outcomes
// published until it reconnected (10 s later) went to no one: counted lost
// although the runner had published them. A diagnostics line says where
// lost readings could have gone: outcomes the broker accepted but the
// observer never got, messages still in flight to the runners, the
// broker's drops, accept errors retried (the broker's and the balancer's:
// the harness process hosts both, and a thousand fleet sites' relays once
// took it to its descriptor limit, EMFILE, which ended both accept loops
// for good; workload.steadyListener, balancer.serve), the observer's lost
// connections.
type workloads struct {
	manifest spec.Manifest
	broker   *workload.Broker
	lines    []*simulate.Line
	runners  []*proc // one per site, in site order
	cancel   context.CancelFunc
	linesWG  sync.WaitGroup
	sub      *autopaho.ConnectionManager

	mu        sync.Mutex
	published map[reading]time.Time   // readings the broker acknowledged
	outcomes  map[reading][]time.Time // when each outcome arrived
	downAt    map[reading]bool        // published while its runner was down
	killed    map[string][]time.Time  // site -> when its runner was killed

	decisions   atomic.Int64
	deadLetters atomic.Int64

	// What the broker itself saw (outcomeTap): each outcome it accepted
	// from a runner, and when each runner's connections dropped.
	atBroker     map[reading][]time.Time
	dropped      map[string][]time.Time // site -> when a runner connection of it ended
	observerDown atomic.Int64           // the observer's connection lost
	log          *slog.Logger
	logFile      *os.File
}

type reading struct {
	site, machine string
	seq           int64
}

// workloadRate is each line's readings per second (two machines).
const workloadRate = 4

func (c *chaos) startWorkloads(ctx context.Context, ports []int) error {
	man, err := spec.LoadManifest(filepath.Join(c.o.example, "workload", "workload.yaml"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(c.dir, "mqtt"), 0o755); err != nil {
		return err
	}
	// The broker's warnings (accept errors, drops, quota) and the
	// observer's lost connections go to logs/mqtt-broker.log.
	blog, err := os.OpenFile(filepath.Join(c.dir, "logs", "mqtt-broker.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(blog, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := workload.StartBroker(workload.BrokerConfig{Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), DataDir: filepath.Join(c.dir, "mqtt"), Logger: log})
	if err != nil {
		blog.Close()
		return err
	}
	w := &workloads{manifest: man, broker: b, log: log, logFile: blog, published: map[reading]time.Time{}, outcomes: map[reading][]time.Time{},
		downAt: map[reading]bool{}, killed: map[string][]time.Time{}, atBroker: map[reading][]time.Time{}, dropped: map[string][]time.Time{}}
	c.wl = w
	tap := &outcomeTap{w: w, topics: map[string]bool{}, clients: map[string]string{}}
	for _, s := range c.sites {
		tap.topics[spec.Topic(man.Output.Decisions, s.id)] = false
		tap.topics[spec.Topic(man.Output.DeadLetter, s.id)] = true
		id := workload.ClientID(s.id, man.Name)
		tap.clients[id], tap.clients[id+"-out"] = s.id, s.id // the session's and the outputs' connections
	}
	if err := b.Server().AddHook(tap, nil); err != nil {
		return err
	}
	if err := w.subscribe(ctx, c.sites); err != nil {
		return err
	}
	for i, s := range c.sites {
		listen := fmt.Sprintf("127.0.0.1:%d", ports[1+i])
		r := &proc{name: "workload-" + s.id, bin: c.o.bin, log: filepath.Join(c.dir, "logs", "workload-"+s.id+".log"),
			args: []string{"workload", "run", "--site", s.id, "--manifest", filepath.Join(c.o.example, "workload", "workload.yaml"),
				"--broker", b.URL(), "--router", s.router, "--listen", listen,
				"--data-dir", filepath.Join(c.dir, "workloads", s.id), "--log-level", "warn"}}
		if err := r.Start(ctx); err != nil {
			return err
		}
		w.runners = append(w.runners, r)
	}
	// The runners' sessions exist before the first reading: from then on
	// the broker keeps what arrives for them while they are down.
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range c.sites {
		id := workload.ClientID(s.id, man.Name)
		for !subscribed(b, id) {
			if time.Now().After(deadline) {
				return fmt.Errorf("workload runner of %s did not subscribe within 30 s (log: %s)", s.id, filepath.Join(c.dir, "logs", "workload-"+s.id+".log"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancel = cancel
	for i, s := range c.sites {
		runner := w.runners[i]
		site := s.id
		l, err := simulate.New(simulate.Config{Site: site, Broker: b.URL(), Machines: 2, Rate: workloadRate, Logger: slog.New(slog.DiscardHandler),
			OnPublish: func(r *simulate.Reading, _ time.Time) {
				k := reading{site, r.Machine, r.Seq}
				w.mu.Lock()
				w.published[k] = time.Now()
				if !runner.up.Load() {
					w.downAt[k] = true
				}
				w.mu.Unlock()
			}})
		if err != nil {
			cancel()
			return err
		}
		w.lines = append(w.lines, l)
		w.linesWG.Go(func() { _ = l.Run(lctx) })
	}
	return nil
}

// subscribed reports whether the broker holds client id's session with
// its subscription.
func subscribed(b *workload.Broker, id string) bool {
	cl, ok := b.Server().Clients.Get(id)
	return ok && cl.State.Subscriptions.Len() > 0
}

// observerID is the run's MQTT client reading the outcomes; observerSession
// how long (s) the broker keeps its session while it is disconnected.
const (
	observerID      = "chaos-observer"
	observerSession = 3600
)

// subscribe reads every site's decisions and dead letters off the broker.
func (w *workloads) subscribe(ctx context.Context, sites []*site) error {
	u, err := url.Parse(w.broker.URL())
	if err != nil {
		return err
	}
	var subs []paho.SubscribeOptions
	dead := map[string]bool{}
	for _, s := range sites {
		d := spec.Topic(w.manifest.Output.DeadLetter, s.id)
		dead[d] = true
		subs = append(subs, paho.SubscribeOptions{Topic: spec.Topic(w.manifest.Output.Decisions, s.id), QoS: 1}, paho.SubscribeOptions{Topic: d, QoS: 1})
	}
	ready := make(chan struct{})
	var once sync.Once
	// A session of its own that outlives a lost connection (an hour): with
	// none, the broker drops the subscription with the connection, and
	// every outcome published until the observer is back (autopaho's
	// default: 10 s later) goes to no one.
	cm, err := autopaho.NewConnection(context.WithoutCancel(ctx), autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 20, CleanStartOnInitialConnection: true, SessionExpiryInterval: observerSession,
		ReconnectBackoff: autopaho.NewExponentialBackoff(100*time.Millisecond, 2*time.Second, 200*time.Millisecond, 2),
		OnConnectionDown: func() bool { w.observerDown.Add(1); w.log.Warn("chaos observer: connection lost"); return true },
		OnConnectError:   func(err error) { w.log.Warn("chaos observer: connect failed", "error", err) },
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go func() {
				if _, err := cm.Subscribe(context.WithoutCancel(ctx), &paho.Subscribe{Subscriptions: subs}); err == nil {
					once.Do(func() { close(ready) })
				}
			}()
		},
		ClientConfig: paho.ClientConfig{ClientID: observerID,
			OnClientError: func(err error) { w.log.Warn("chaos observer: client error", "error", err) },
			OnServerDisconnect: func(d *paho.Disconnect) {
				w.log.Warn("chaos observer: disconnected by the broker", "reason", d.ReasonCode)
			},
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				w.outcome(pr.Packet.Topic, pr.Packet.Payload, dead[pr.Packet.Topic])
				return true, nil
			}}},
	})
	if err != nil {
		return err
	}
	w.sub = cm
	select {
	case <-ready:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("the run's MQTT observer did not subscribe")
	}
}

// outcome records a decision or a dead letter against its reading.
func (w *workloads) outcome(topic string, payload []byte, dead bool) {
	if dead {
		w.deadLetters.Add(1)
	} else {
		w.decisions.Add(1)
	}
	k, ok := outcomeReading(payload, dead)
	if !ok {
		return
	}
	w.mu.Lock()
	w.outcomes[k] = append(w.outcomes[k], time.Now())
	w.mu.Unlock()
}

// outcomeReading is the reading a decision or a dead letter is about.
func outcomeReading(payload []byte, dead bool) (reading, bool) {
	var msg struct {
		Site    string `json:"site"`
		Machine string `json:"machine"`
		Seq     *int64 `json:"seq"`
		Payload string `json:"payload"`
	}
	if json.Unmarshal(payload, &msg) != nil {
		return reading{}, false
	}
	site := msg.Site
	if dead {
		_ = json.Unmarshal([]byte(msg.Payload), &msg) // the reading is inside
	}
	if msg.Seq == nil {
		return reading{}, false
	}
	return reading{site, msg.Machine, *msg.Seq}, true
}

// outcomeTap is a broker hook that notes every outcome the broker accepted
// from a runner (whoever then receives it) and every runner connection that
// ended: a runner's outcome published twice is told apart from the
// observer's own redeliveries, and allowed across a kill or a lost
// connection of that runner (the broker redelivers what it had not
// acknowledged; its output connection re-sends a publish not acknowledged).
type outcomeTap struct {
	mqtt.HookBase
	w       *workloads
	topics  map[string]bool   // outcome topic -> dead letters
	clients map[string]string // runner client ID -> site
}

func (h *outcomeTap) ID() string { return "chaos-outcome-tap" }

func (h *outcomeTap) Provides(b byte) bool { return b == mqtt.OnPublished || b == mqtt.OnDisconnect }

func (h *outcomeTap) OnPublished(_ *mqtt.Client, pk packets.Packet) {
	dead, ok := h.topics[pk.TopicName]
	if !ok {
		return
	}
	if k, ok := outcomeReading(pk.Payload, dead); ok {
		h.w.mu.Lock()
		h.w.atBroker[k] = append(h.w.atBroker[k], time.Now())
		h.w.mu.Unlock()
	}
}

func (h *outcomeTap) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if site, ok := h.clients[cl.ID]; ok {
		h.w.mu.Lock()
		h.w.dropped[site] = append(h.w.dropped[site], time.Now())
		h.w.mu.Unlock()
	}
}

// kill SIGKILLs a site's runner and starts it again after pause.
func (w *workloads) kill(ctx context.Context, i int, site string, pause func()) error {
	r := w.runners[i]
	w.mu.Lock()
	w.killed[site] = append(w.killed[site], time.Now())
	w.mu.Unlock()
	r.Kill()
	pause()
	return r.Start(ctx)
}

func (w *workloads) kills() int64 {
	var n int64
	for _, r := range w.runners {
		n += r.kills.Load()
	}
	return n
}

// workloadFigures is what the runners did, checked at the end.
type workloadFigures struct {
	published, decisions, deadLetters int64
	lost, duplicates, extra, resumed  int
	// Diagnostics of the lost: those whose outcome the broker accepted
	// (the observer missed it), the runners' sessions' backlog at the end,
	// the broker's drop counters, the observer's lost connections.
	lostAtBroker, backlog          int
	observerBacklog                int // in flight to the observer at the end (sent, not acknowledged)
	brokerDropped, inflightDropped int64
	observerDown, acceptErrors     int64
	// acrossDrop counts the duplicates across a runner's lost connection
	// with no kill (part of duplicates).
	acrossDrop int
}

// finish stops the lines, waits for every reading's outcome (at most
// drain), and accounts for them.
func (w *workloads) finish(drain time.Duration) workloadFigures {
	w.cancel()
	w.linesWG.Wait()
	// A backlog built while the machine was loaded (a thousand-site fleet
	// beside the runners) drains at the runners' pace: the wait goes on
	// while outcomes keep arriving, until drain passes with none (or 20
	// drains in all).
	began, deadline := time.Now(), time.Now().Add(drain)
	for last := w.missing(); last > 0 && time.Now().Before(deadline) && time.Since(began) < 20*drain; {
		time.Sleep(250 * time.Millisecond)
		if m := w.missing(); m < last {
			last, deadline = m, time.Now().Add(drain)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	f := workloadFigures{published: int64(len(w.published)), decisions: w.decisions.Load(), deadLetters: w.deadLetters.Load(),
		observerDown: w.observerDown.Load(), acceptErrors: w.broker.AcceptErrors()}
	info := w.broker.Server().Info
	f.brokerDropped, f.inflightDropped = atomic.LoadInt64(&info.MessagesDropped), atomic.LoadInt64(&info.InflightDropped)
	for _, cl := range w.broker.Server().Clients.GetAll() {
		if cl.ID != observerID {
			f.backlog += cl.State.Inflight.Len()
		} else {
			f.observerBacklog = cl.State.Inflight.Len()
		}
	}
	for k := range w.published {
		if len(w.outcomes[k]) == 0 {
			f.lost++
			if len(w.atBroker[k]) > 0 {
				f.lostAtBroker++
			}
			continue
		}
		if w.downAt[k] {
			f.resumed++
		}
		// Duplicates are the runners' publications, as the broker accepted
		// them (the observer may be sent one twice across its own lost
		// connection: that is not the runner deciding twice).
		outs := w.atBroker[k]
		for _, t := range outs[min(1, len(outs)):] {
			switch {
			case w.killedBetween(k.site, outs[0].Add(-time.Second), t):
				f.duplicates++
			case w.droppedBetween(k.site, outs[0].Add(-time.Second), t):
				f.duplicates++
				f.acrossDrop++
			default:
				f.extra++
			}
		}
	}
	return f
}

func (w *workloads) missing() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for k := range w.published {
		if len(w.outcomes[k]) == 0 {
			n++
		}
	}
	return n
}

func (w *workloads) killedBetween(site string, from, to time.Time) bool {
	for _, t := range w.killed[site] {
		if t.After(from) && t.Before(to) {
			return true
		}
	}
	return false
}

func (w *workloads) droppedBetween(site string, from, to time.Time) bool {
	for _, t := range w.dropped[site] {
		if t.After(from) && t.Before(to) {
			return true
		}
	}
	return false
}

func (w *workloads) close() {
	if w == nil {
		return
	}
	if w.cancel != nil {
		w.cancel()
		w.linesWG.Wait()
	}
	for _, r := range w.runners {
		r.Stop()
	}
	if w.sub != nil {
		_ = w.sub.Disconnect(context.Background())
	}
	_ = w.broker.Close()
	if w.logFile != nil {
		w.logFile.Close()
	}
}
