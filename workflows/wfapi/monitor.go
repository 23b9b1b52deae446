package wfapi

import "time"

// SignalMonitorVerdict carries a MonitorVerdict to a release: the drift
// monitor found a version breaching at a site. It is not one of the
// operators' Signals; the monitor sends it.
const SignalMonitorVerdict = "monitor-verdict"

// ReasonEdgeDrift is a retraining trigger from modelfleet's own drift
// monitor, on the edge sites' signal messages.
const ReasonEdgeDrift = "edge-drift"

// MonitorVerdict is a breach the drift monitor found for one version at one
// site over one window.
type MonitorVerdict struct {
	ID              string    `json:"id"` // the verdict's ID: site, model, version, window end
	Site            string    `json:"site"`
	Version         string    `json:"version"`
	Reason          string    `json:"reason"`
	WindowEnd       time.Time `json:"windowEnd"`
	DataDrift       bool      `json:"dataDrift,omitempty"`
	PredictionDrift bool      `json:"predictionDrift,omitempty"`
	QualityBreached bool      `json:"qualityBreached,omitempty"`
}
