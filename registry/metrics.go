package registry

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics live in a prometheus.Registry of their own per Registry, so a
// process (or a test) can open several registries without duplicate
// registration panics.
type metrics struct {
	reg           *prometheus.Registry
	registrations *prometheus.CounterVec
	deliveries    *prometheus.CounterVec
}

func newMetrics(r *Registry) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "modelfleet_registry_registrations_total",
			Help: "Model registrations by outcome: created, existing (idempotent repeat) or rejected.",
		}, []string{"outcome"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "modelfleet_registry_event_deliveries_total",
			Help: "Event delivery attempts by outcome: delivered, failed (will retry) or dead_lettered.",
		}, []string{"outcome"}),
	}
	for _, o := range []string{"created", "existing", "rejected"} {
		m.registrations.WithLabelValues(o)
	}
	for _, o := range []string{"delivered", "failed", "dead_lettered"} {
		m.deliveries.WithLabelValues(o)
	}
	// Read from the outbox at scrape time, so the gauge cannot drift from it.
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "modelfleet_registry_outbox_pending",
		Help: "Events waiting in the outbox for delivery.",
	}, func() float64 { return float64(r.Pending()) })
	m.reg.MustRegister(m.registrations, m.deliveries, pending)
	return m
}

// Gatherer returns the registry's metrics, for a host process that serves
// its own /metrics.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.metrics.reg }
