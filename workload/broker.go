package workload

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// BrokerConfig configures the embedded MQTT broker of a site (the dev stack
// and tests; a plant brings its own broker in production).
type BrokerConfig struct {
	Addr string // e.g. 127.0.0.1:1883; port 0 picks a free one
	// DataDir, if set, keeps sessions, subscriptions and unacknowledged
	// QoS 1 messages in a bbolt file there, so a broker restart loses none.
	DataDir string
	// MaxQueued bounds each session's QoS 1 messages; 0 is MaxQueued.
	MaxQueued int
	Logger    *slog.Logger
}

// MaxQueued is how many QoS 1 messages the broker holds for one session
// (in flight or queued while its client is away); beyond it, it drops. At
// 1,000 messages/s that is a minute of a workload being away. A message
// dropped is counted (Broker.Dropped) and logged, never silent.
const MaxQueued = 65535

// Broker is an embedded MQTT 5 broker (mochi-mqtt), open to clients on its
// address without authentication: bind it to loopback or a plant network.
type Broker struct {
	srv    *mqtt.Server
	addr   string
	rescue *takeoverRescue
	ln     *steadyListener
}

// Dropped counts the messages the broker dropped: a session's MaxQueued
// QoS 1 messages already held (mochi logs "client store quota reached"),
// or a client's outbound queue full (dropLog logs it).
func (b *Broker) Dropped() int64 {
	return atomic.LoadInt64(&b.srv.Info.InflightDropped) + atomic.LoadInt64(&b.srv.Info.MessagesDropped)
}

// dropLog logs the messages mochi drops because a client's outbound queue
// is full, which it counts but does not log: the first, then at most one
// line a second with the count since.
type dropLog struct {
	mqtt.HookBase
	log   *slog.Logger
	mu    sync.Mutex
	last  time.Time
	since int
}

func (h *dropLog) ID() string { return "modelfleet-drop-log" }

func (h *dropLog) Provides(b byte) bool { return b == mqtt.OnPublishDropped }

func (h *dropLog) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.since++
	if time.Since(h.last) < time.Second {
		return
	}
	h.log.Warn("mqtt broker: message dropped: the client's outbound queue is full", "client", cl.ID, "topic", pk.TopicName, "dropped", h.since)
	h.last, h.since = time.Now(), 0
}

// AcceptErrors counts the accept errors the broker's listener retried
// (steadyListener); each streak of them is logged.
func (b *Broker) AcceptErrors() int64 { return b.ln.errors.Load() }

// Rescued counts messages saved from the broker's session take-over race
// (see takeoverRescue).
func (b *Broker) Rescued() int64 { return b.rescue.rescued.Load() }

// StartBroker starts a broker and returns once it accepts connections.
func StartBroker(cfg BrokerConfig) (*Broker, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("mqtt broker: listen %s: %w", cfg.Addr, err)
	}
	return serveBroker(cfg, ln)
}

// serveBroker runs a broker on ln, which it closes when it stops.
func serveBroker(cfg BrokerConfig, ln net.Listener) (*Broker, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	caps := mqtt.NewDefaultServerCapabilities()
	queued := MaxQueued
	if cfg.MaxQueued > 0 {
		queued = min(cfg.MaxQueued, MaxQueued)
	}
	caps.MaximumInflight = uint16(queued)
	caps.MaximumClientWritesPending = int32(queued)
	srv := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: log.With("component", "mqtt-broker"), InlineClient: false})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		ln.Close()
		return nil, err
	}
	rescue := &takeoverRescue{srv: srv}
	if err := srv.AddHook(rescue, nil); err != nil {
		ln.Close()
		return nil, err
	}
	if err := srv.AddHook(&dropLog{log: log.With("component", "mqtt-broker")}, nil); err != nil {
		ln.Close()
		return nil, err
	}
	if cfg.DataDir != "" {
		if err := srv.AddHook(new(bolt.Hook), &bolt.Options{Path: filepath.Join(cfg.DataDir, "mqtt.db")}); err != nil {
			ln.Close()
			return nil, fmt.Errorf("mqtt broker: storage: %w", err)
		}
	}
	steady := &steadyListener{Listener: ln, log: log.With("component", "mqtt-broker")}
	if err := srv.AddListener(listeners.NewNet("tcp", steady)); err != nil {
		srv.Close()
		ln.Close()
		return nil, fmt.Errorf("mqtt broker: listen %s: %w", cfg.Addr, err)
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		return nil, fmt.Errorf("mqtt broker: %w", err)
	}
	return &Broker{srv: srv, addr: ln.Addr().String(), rescue: rescue, ln: steady}, nil
}

// URL is the broker's address for clients, e.g. mqtt://127.0.0.1:1883.
func (b *Broker) URL() string { return "mqtt://" + b.addr }

// Server is the underlying mochi server, e.g. for its $SYS figures.
func (b *Broker) Server() *mqtt.Server { return b.srv }

// Close disconnects every client and stops the broker.
func (b *Broker) Close() error { return b.srv.Close() }
