package edge

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelfleet/modelfleet"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// unknownModel labels requests for a model the router does not serve. The
// requested name is not used as a label: anyone could fill the registry with
// made-up names. Parentheses keep it apart from every valid model name.
const unknownModel = "(unknown)"

// metrics are per router, in the router's own registry, so that two agents in
// one process (tests, a simulator) do not collide in a global one.
type metrics struct {
	reg *prometheus.Registry
	// epoch is when these counters started (unix nanoseconds): reported
	// with them, so that the control plane never subtracts the counters of
	// one run of the agent from another's.
	epoch       int64
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	predictions *prometheus.HistogramVec
	loaded      prometheus.Gauge
	weight      *prometheus.GaugeVec

	shadowRequests    *prometheus.CounterVec
	shadowLatency     *prometheus.HistogramVec
	shadowPredictions *prometheus.HistogramVec
	shadowAgreement   *prometheus.CounterVec
	shadowDropped     *prometheus.CounterVec
}

// armMetrics are the metric children of one loaded version, looked up once
// when its route is built: WithLabelValues hashes the labels and takes the
// vector's lock, which the request path must not.
type armMetrics struct {
	ok          prometheus.Counter
	latency     prometheus.Observer
	predictions prometheus.Observer

	// Shadow versions only.
	shadowOK, shadowErrors prometheus.Counter
	shadowLatency          prometheus.Observer
	shadowPredictions      prometheus.Observer
	agree, disagree        prometheus.Counter
	dropped                prometheus.Counter
}

func newMetrics(site string) *metrics {
	reg := prometheus.NewRegistry()
	siteLabel := prometheus.Labels{"site": site}
	mv := []string{"model", "version"}
	// The agent reports these bins to the control plane, which judges a
	// release's latency criterion on them: one layout for both.
	latencyBuckets := modelfleet.LatencyBuckets
	predictionBuckets := modelfleet.PredictionBins
	m := &metrics{
		reg:   reg,
		epoch: time.Now().UnixNano(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "modelfleet_edge_score_requests_total",
			Help:        "Score requests by model, version and outcome (ok or an error code).",
			ConstLabels: siteLabel,
		}, []string{"model", "version", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "modelfleet_edge_score_duration_seconds",
			Help:        "Time to answer a score request for a served model, body read included.",
			ConstLabels: siteLabel,
			Buckets:     latencyBuckets,
		}, mv),
		predictions: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "modelfleet_edge_prediction",
			Help:        "Predicted probability of the positive class; a shift here is the first sign of drift.",
			ConstLabels: siteLabel,
			Buckets:     predictionBuckets,
		}, mv),
		loaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "modelfleet_edge_models_loaded",
			Help:        "Model versions loaded in the inference router.",
			ConstLabels: siteLabel,
		}),
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name:        "modelfleet_edge_traffic_weight",
			Help:        "Percentage of a model's requests routed to each loaded version.",
			ConstLabels: siteLabel,
		}, mv),
		shadowRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "modelfleet_edge_shadow_requests_total",
			Help:        "Mirrored requests a shadow version scored, by outcome (ok or error).",
			ConstLabels: siteLabel,
		}, []string{"model", "version", "outcome"}),
		shadowLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "modelfleet_edge_shadow_duration_seconds",
			Help:        "Time a shadow version took to score a mirrored request, queueing excluded.",
			ConstLabels: siteLabel,
			Buckets:     latencyBuckets,
		}, mv),
		shadowPredictions: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "modelfleet_edge_shadow_prediction",
			Help:        "Predicted probability of the positive class by a shadow version.",
			ConstLabels: siteLabel,
			Buckets:     predictionBuckets,
		}, mv),
		shadowAgreement: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "modelfleet_edge_shadow_label_agreement_total",
			Help:        "Mirrored requests by whether the shadow's label equals the label the primary answered (agree or disagree).",
			ConstLabels: siteLabel,
		}, []string{"model", "version", "result"}),
		shadowDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "modelfleet_edge_shadow_dropped_total",
			Help:        "Requests not mirrored to a shadow version because its queue was full.",
			ConstLabels: siteLabel,
		}, mv),
	}
	reg.MustRegister(m.requests, m.latency, m.predictions, m.loaded, m.weight,
		m.shadowRequests, m.shadowLatency, m.shadowPredictions, m.shadowAgreement, m.shadowDropped,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// arm resolves the metric children of one version.
func (m *metrics) arm(model, version string, shadow bool) armMetrics {
	a := armMetrics{
		ok:          m.requests.WithLabelValues(model, version, "ok"),
		latency:     m.latency.WithLabelValues(model, version),
		predictions: m.predictions.WithLabelValues(model, version),
	}
	if shadow {
		a.shadowOK = m.shadowRequests.WithLabelValues(model, version, "ok")
		a.shadowErrors = m.shadowRequests.WithLabelValues(model, version, "error")
		a.shadowLatency = m.shadowLatency.WithLabelValues(model, version)
		a.shadowPredictions = m.shadowPredictions.WithLabelValues(model, version)
		a.agree = m.shadowAgreement.WithLabelValues(model, version, "agree")
		a.disagree = m.shadowAgreement.WithLabelValues(model, version, "disagree")
		a.dropped = m.shadowDropped.WithLabelValues(model, version)
	}
	return a
}

// setWeights publishes the weights of a route's versions.
func (m *metrics) setWeights(rt *route) {
	for _, a := range rt.arms {
		m.weight.WithLabelValues(rt.name, a.Model.Version).Set(float64(a.weight))
	}
}

// forget deletes every series of one version of a model.
func (m *metrics) forget(model, version string) {
	l := prometheus.Labels{"model": model, "version": version}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.requests, m.latency, m.predictions, m.weight,
		m.shadowRequests, m.shadowLatency, m.shadowPredictions, m.shadowAgreement, m.shadowDropped,
	} {
		v.DeletePartialMatch(l)
	}
}
