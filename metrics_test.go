package modelfleet

import (
	"math"
	"strings"
	"testing"
)

func TestValidationSpecThresholds(t *testing.T) {
	digest := "sha256:" + strings.Repeat("0", 64)
	for _, c := range []struct {
		metric    string
		threshold float64
		ok        bool
	}{
		{MetricAUC, 0.8, true}, {MetricAUC, 1.2, false}, {MetricMacroF1, 0.7, true}, {MetricMacroF1, -0.1, false},
		{MetricR2, -3, true}, {MetricR2, 1.5, false}, {MetricR2, math.Inf(-1), false},
		{MetricRMSE, 12.5, true}, {MetricRMSE, -1, false}, {MetricMAE, math.NaN(), false}, {MetricLogLoss, 0.4, true},
		{"mape", 0.1, false},
	} {
		v := ValidationSpec{DataDigest: digest, Metric: c.metric, Threshold: c.threshold}
		if err := v.Validate(); (err == nil) != c.ok {
			t.Errorf("%s threshold %v: Validate() = %v, want ok=%v", c.metric, c.threshold, err, c.ok)
		}
	}
	for _, c := range []struct {
		metric       string
		value, thres float64
		pass         bool
	}{
		{MetricAccuracy, 0.9, 0.85, true}, {MetricAccuracy, 0.8, 0.85, false}, {MetricR2, 0.5, 0.6, false},
		{MetricRMSE, 2, 3, true}, {MetricRMSE, 3.5, 3, false}, {MetricLogLoss, 0.3, 0.3, true}, {MetricMAE, 1, 0.5, false},
	} {
		v := ValidationSpec{Metric: c.metric, Threshold: c.thres}
		if got := v.Passes(c.value); got != c.pass {
			t.Errorf("%s %v against threshold %v: Passes = %v, want %v", c.metric, c.value, c.thres, got, c.pass)
		}
	}
}
