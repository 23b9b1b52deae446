package edge

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// unknownModel labels requests for a model the router does not serve. The
// requested name is not used as a label: anyone could fill the registry with
// made-up names. Parentheses keep it apart from every valid model name.
const unknownModel = "(unknown)"

// metrics are per router, in the router's own registry, so that two agents in
// one process (tests, a simulator) do not collide in a global one.
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	predictions *prometheus.HistogramVec
	loaded      prometheus.Gauge
}

func newMetrics(site string) *metrics {
	reg := prometheus.NewRegistry()
	siteLabel := prometheus.Labels{"site": site}
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "modelfleet_edge_score_requests_total",
			Help:        "Score requests by model, version and outcome (ok or an error code).",
			ConstLabels: siteLabel,
		}, []string{"model", "version", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "modelfleet_edge_score_duration_seconds",
			Help:        "Time to answer a score request for a served model, body read included.",
			ConstLabels: siteLabel,
			// Tree ensembles answer in well under a millisecond; the upper
			// buckets are for big bodies on slow links.
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"model", "version"}),
		predictions: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "modelfleet_edge_prediction",
			Help:        "Predicted probability of the positive class; a shift here is the first sign of drift.",
			ConstLabels: siteLabel,
			Buckets:     prometheus.LinearBuckets(0.1, 0.1, 9),
		}, []string{"model", "version"}),
		loaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "modelfleet_edge_models_loaded",
			Help:        "Model versions loaded in the inference router.",
			ConstLabels: siteLabel,
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.predictions, m.loaded,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
