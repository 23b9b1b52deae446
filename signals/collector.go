package signals

import (
	"log/slog"
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes an Aggregator's figures (cumulative since the agent
// started: every closed window plus the open one), and a Buffer's and
// Sender's, in Prometheus format. Register it on the router's registry
// (edge.Router.Registry) so /metrics at the site shows them with no cloud
// connection. Buffer and Sender may be nil.
type Collector struct {
	Aggregator *Aggregator
	Buffer     *Buffer
	Sender     *Sender
	Logger     *slog.Logger
}

var _ prometheus.Collector = (*Collector)(nil)

var (
	mv  = []string{"model", "version"}
	mvf = []string{"model", "version", "feature"}

	descRequests = prometheus.NewDesc("modelfleet_signal_requests_total",
		"Score requests answered per model version, as the signal messages count them.", mv, nil)
	descErrors = prometheus.NewDesc("modelfleet_signal_errors_total",
		"Failed score requests per model version, by error code.", []string{"model", "version", "code"}, nil)
	descLatency = prometheus.NewDesc("modelfleet_signal_latency_seconds",
		"Score request latency per model version, in the signal messages' fixed buckets.", mv, nil)
	descFeature = prometheus.NewDesc("modelfleet_signal_feature",
		"Input feature values over the bins of the model's training baseline (le = a bin's upper edge; for a categorical feature, a category).", mvf, nil)
	descPrediction = prometheus.NewDesc("modelfleet_signal_prediction",
		"Predictions over the bins of the model's baseline predictions.", mv, nil)
	descNulls = prometheus.NewDesc("modelfleet_signal_feature_nulls_total",
		"Rejected rows where the feature was missing or null.", mvf, nil)
	descTypeErrors = prometheus.NewDesc("modelfleet_signal_feature_type_errors_total",
		"Rejected rows where the feature was not a number.", mvf, nil)
	descOutOfBounds = prometheus.NewDesc("modelfleet_signal_feature_out_of_bounds_total",
		"Scored values outside the baseline's range (numerical) or categories (categorical).", mvf, nil)
	descBuffered = prometheus.NewDesc("modelfleet_signal_buffer_messages",
		"Signal messages on local disk waiting to be sent.", nil, nil)
	descBufferBytes = prometheus.NewDesc("modelfleet_signal_buffer_bytes",
		"Bytes of signal messages waiting to be sent.", nil, nil)
	descDropped = prometheus.NewDesc("modelfleet_signal_buffer_dropped_total",
		"Signal messages dropped, oldest first, because the buffer was full.", nil, nil)
	descSent = prometheus.NewDesc("modelfleet_signal_sent_total",
		"Signal messages the cloud queue accepted.", nil, nil)
	descSendFailures = prometheus.NewDesc("modelfleet_signal_send_failures_total",
		"Failed attempts to send to the cloud queue (retried).", nil, nil)
	descRejected = prometheus.NewDesc("modelfleet_signal_rejected_total",
		"Signal messages the cloud queue refused for good (dropped).", nil, nil)
	descConnected = prometheus.NewDesc("modelfleet_signal_connected",
		"1 if the last send to the cloud queue succeeded.", nil, nil)
)

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descErrors, descLatency, descFeature, descPrediction,
		descNulls, descTypeErrors, descOutOfBounds, descBuffered, descBufferBytes, descDropped,
		descSent, descSendFailures, descRejected, descConnected} {
		ch <- d
	}
}

// Collect reads the current figures.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.Aggregator != nil {
		for _, s := range c.Aggregator.sorted() {
			collectSeries(ch, s)
		}
	}
	if c.Buffer != nil {
		if st, err := c.Buffer.Stats(); err == nil {
			ch <- prometheus.MustNewConstMetric(descBuffered, prometheus.GaugeValue, float64(st.Messages))
			ch <- prometheus.MustNewConstMetric(descBufferBytes, prometheus.GaugeValue, float64(st.Bytes))
			ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(st.Dropped))
		} else if c.Logger != nil {
			c.Logger.Warn("signal buffer stats", "err", err)
		}
	}
	if c.Sender != nil {
		st := c.Sender.Stats()
		ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(st.Sent))
		ch <- prometheus.MustNewConstMetric(descSendFailures, prometheus.CounterValue, float64(st.Failures))
		ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(st.Rejected))
		connected := 0.0
		if st.Connected {
			connected = 1
		}
		ch <- prometheus.MustNewConstMetric(descConnected, prometheus.GaugeValue, connected)
	}
}

func collectSeries(ch chan<- prometheus.Metric, s *series) {
	l := s.layout
	w := newWindow(l)
	s.mu.Lock()
	s.total.addTo(w)
	s.cur.addTo(w)
	s.mu.Unlock()

	ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(w.requests), s.model, s.version)
	for _, code := range slices.Sorted(maps.Keys(w.codes)) {
		ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(w.codes[code]), s.model, s.version, code)
	}
	buckets := make(map[float64]uint64, len(LatencyBoundsMs))
	var cum uint64
	for i, b := range LatencyBoundsMs {
		cum += uint64(w.latency[i])
		buckets[b/1000] = cum
	}
	ch <- prometheus.MustNewConstHistogram(descLatency, uint64(w.requests), w.latencySum, buckets, s.model, s.version)

	for h, f := range l.hists {
		counts := w.counts[l.offsets[h] : l.offsets[h]+len(f.Counts)]
		hb := histBuckets(f, counts)
		if h == l.pred {
			ch <- prometheus.MustNewConstHistogram(descPrediction, uint64(w.scored), w.sums[h], hb, s.model, s.version)
			continue
		}
		ch <- prometheus.MustNewConstHistogram(descFeature, uint64(w.scored), w.sums[h], hb, s.model, s.version, f.Name)
		ch <- prometheus.MustNewConstMetric(descNulls, prometheus.CounterValue, float64(w.nulls[h]), s.model, s.version, f.Name)
		ch <- prometheus.MustNewConstMetric(descTypeErrors, prometheus.CounterValue, float64(w.typeErrors[h]), s.model, s.version, f.Name)
		oob := (&Histogram{Counts: counts}).OutOfBounds(f.Categorical())
		ch <- prometheus.MustNewConstMetric(descOutOfBounds, prometheus.CounterValue, float64(oob), s.model, s.version, f.Name)
	}
}

// histBuckets turns baseline-binned counts into Prometheus's cumulative
// buckets. Numerical: le = each edge after the first, so values below the
// range fall in the first bucket and those above in +Inf only. Categorical:
// le = each category, with unseen values in +Inf only.
func histBuckets(f *FeatureBaseline, counts []int64) map[float64]uint64 {
	out := map[float64]uint64{}
	var cum uint64
	if f.Categorical() {
		for i, c := range f.Categories {
			cum += uint64(counts[i])
			out[c] = cum
		}
		return out
	}
	cum = uint64(counts[0])
	for i := 1; i < len(f.Edges); i++ {
		cum += uint64(counts[i])
		out[f.Edges[i]] = cum
	}
	return out
}
