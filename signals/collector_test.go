package signals

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modelfleet/modelfleet"
)

func TestCollector(t *testing.T) {
	a, c, _ := newTestAggregator(t)
	buf := openBuffer(t, filepath.Join(t.TempDir(), "b.db"), BufferOptions{})
	defer buf.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(&Collector{Aggregator: a, Buffer: buf, Sender: &Sender{}})

	a.Observe("bearing-failure", "3", healthy, 0.02, time.Millisecond, nil)
	a.Observe("bearing-failure", "3", []float64{99, 0.42, 55.2, 1485, 62, 5200}, 0.9, time.Millisecond, nil)
	for _, m := range a.Flush(c.add(time.Minute)) { // closed windows count too
		_ = buf.Add(m)
	}
	a.Observe("bearing-failure", "3", nil, 0, 2*time.Millisecond, modelfleet.Errorf(modelfleet.EINTERNAL, "x"))

	want := `
# HELP modelfleet_signal_requests_total Score requests answered per model version, as the signal messages count them.
# TYPE modelfleet_signal_requests_total counter
modelfleet_signal_requests_total{model="bearing-failure",version="3"} 3
# HELP modelfleet_signal_errors_total Failed score requests per model version, by error code.
# TYPE modelfleet_signal_errors_total counter
modelfleet_signal_errors_total{code="internal",model="bearing-failure",version="3"} 1
# HELP modelfleet_signal_buffer_messages Signal messages on local disk waiting to be sent.
# TYPE modelfleet_signal_buffer_messages gauge
modelfleet_signal_buffer_messages 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "modelfleet_signal_requests_total", "modelfleet_signal_errors_total", "modelfleet_signal_buffer_messages"); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		switch mf.GetName() {
		case "modelfleet_signal_feature":
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "vibration_rms_mm_s" {
					found = true
					h := m.GetHistogram()
					last := h.GetBucket()[len(h.GetBucket())-1]
					if h.GetSampleCount() != 2 || last.GetCumulativeCount() != 1 { // 99 is above the range: in +Inf only
						t.Errorf("vibration histogram: %d samples, last bucket %d", h.GetSampleCount(), last.GetCumulativeCount())
					}
				}
			}
		case "modelfleet_signal_feature_out_of_bounds_total":
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "vibration_rms_mm_s" && m.GetCounter().GetValue() != 1 {
					t.Errorf("out of bounds = %v, want 1", m.GetCounter().GetValue())
				}
			}
		}
	}
	if !found {
		t.Error("no vibration_rms_mm_s feature histogram")
	}
	if n := testutil.CollectAndCount(&Collector{Aggregator: a}, "modelfleet_signal_prediction"); n != 1 {
		t.Errorf("%d prediction histograms", n)
	}
}
