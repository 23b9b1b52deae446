package events

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelfleet/modelfleet"
)

type handlerMetrics struct {
	events     *prometheus.CounterVec // by type and outcome
	deliveries *prometheus.CounterVec // by HTTP status
}

func newHandlerMetrics(reg prometheus.Registerer) handlerMetrics {
	return handlerMetrics{
		events: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "modelfleet_events_received_total",
			Help: "Events received from Event Grid, by event type and outcome (dispatched, invalid, failed, validated).",
		}, []string{"type", "outcome"})),
		deliveries: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "modelfleet_event_deliveries_total",
			Help: "Event Grid webhook POST requests, by HTTP status answered.",
		}, []string{"code"})),
	}
}

// newDispatchCounter counts what the TemporalDispatcher did with each event.
func newDispatchCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	return register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "modelfleet_events_dispatched_total",
		Help: "Events handled by the Temporal dispatcher, by event type and result (started, already_ran, triggered, signaled, no_workflow, audited, not_ours, ignored, invalid, error).",
	}, []string{"type", "result"}))
}

// register registers c on reg, or returns the collector already registered
// there under the same description (two handlers may share a registry). A nil
// reg leaves c unregistered. Any other failure is a programming error, and
// panics like prometheus.MustRegister.
func register(reg prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return old
			}
		}
		panic(fmt.Sprintf("events: registering metrics: %v", err))
	}
	return c
}

// knownTypes keep their own label value; every other type is "other", so a
// sender cannot grow the metric without bound.
var knownTypes = map[string]bool{
	EventSubscriptionValidation:          true,
	modelfleet.EventModelRegistered:      true,
	modelfleet.EventModelDeployed:        true,
	modelfleet.EventRunCompleted:         true,
	modelfleet.EventRunStatusChanged:     true,
	modelfleet.EventDatasetDriftDetected: true,
}

func typeLabel(t string) string {
	if knownTypes[t] {
		return t
	}
	return "other"
}
