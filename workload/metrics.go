package workload

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Outcomes of one message (modelfleet_workload_messages_total).
const (
	OutcomeDecided      = "decided"
	OutcomeWarming      = "warming"
	OutcomeDeadLettered = "dead_lettered"
)

// Metrics are a site's workload metrics. One set serves every version the
// supervisor runs (the version is a label), so counters survive a swap.
type Metrics struct {
	Registry    *prometheus.Registry
	messages    *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	actions     *prometheus.CounterVec
	process     *prometheus.HistogramVec
	score       *prometheus.HistogramVec
	restarts    *prometheus.CounterVec
	swaps       *prometheus.CounterVec
	connected   *prometheus.GaugeVec
}

// NewMetrics registers the workload metrics in a new registry.
func NewMetrics() *Metrics {
	buckets := []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, 1}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "modelfleet_workload_messages_total",
			Help: "Factory messages handled, by outcome: decided, warming (window filling) or dead_lettered."}, []string{"workload", "version", "outcome"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "modelfleet_workload_dead_letters_total",
			Help: "Messages forwarded to the dead-letter topic, by reason."}, []string{"workload", "version", "reason"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "modelfleet_workload_decisions_total",
			Help: "Decisions published, by action."}, []string{"workload", "version", "action"}),
		process: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "modelfleet_workload_process_seconds",
			Help: "From receipt of a message to its decision being acknowledged by the broker.", Buckets: buckets}, []string{"workload", "version"}),
		score: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "modelfleet_workload_score_seconds",
			Help: "Model calls, including retries.", Buckets: buckets}, []string{"workload", "version"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "modelfleet_workload_restarts_total",
			Help: "Instances the supervisor restarted after a failure."}, []string{"workload"}),
		swaps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "modelfleet_workload_swaps_total",
			Help: "Version swaps, by result."}, []string{"workload", "result"}),
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "modelfleet_workload_connected",
			Help: "1 while the running version is connected to the broker."}, []string{"workload", "version"}),
	}
	m.Registry.MustRegister(m.messages, m.deadLetters, m.actions, m.process, m.score, m.restarts, m.swaps, m.connected)
	return m
}

// Handler serves the metrics in Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// versionMetrics are the label-bound series of one workload version, bound
// once so the message path does no label lookups.
type versionMetrics struct {
	decided, warming, dead prometheus.Counter
	process, score         prometheus.Observer
	connected              prometheus.Gauge
	m                      *Metrics
	name, version          string
}

func (m *Metrics) version(name, version string) *versionMetrics {
	return &versionMetrics{
		decided:   m.messages.WithLabelValues(name, version, OutcomeDecided),
		warming:   m.messages.WithLabelValues(name, version, OutcomeWarming),
		dead:      m.messages.WithLabelValues(name, version, OutcomeDeadLettered),
		process:   m.process.WithLabelValues(name, version),
		score:     m.score.WithLabelValues(name, version),
		connected: m.connected.WithLabelValues(name, version),
		m:         m, name: name, version: version,
	}
}

func (v *versionMetrics) deadLetter(reason string) {
	v.dead.Inc()
	v.m.deadLetters.WithLabelValues(v.name, v.version, reason).Inc()
}

func (v *versionMetrics) action(a string) {
	v.m.actions.WithLabelValues(v.name, v.version, a).Inc()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
