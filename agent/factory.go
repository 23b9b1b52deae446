package agent

import "log/slog"

// NewSource returns the desired-state source cfg names: the mounted file if
// DesiredFile is set (re-read every HeartbeatInterval), else the gateway at
// GatewayURL (long polled for up to HeartbeatInterval). Nil if neither: the
// site serves what it has on disk and reports nowhere.
func NewSource(cfg Config, log *slog.Logger) DesiredSource {
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeat
	}
	switch {
	case cfg.DesiredFile != "":
		return NewFileSource(cfg.DesiredFile, cfg.SiteID, cfg.HeartbeatInterval, log)
	case cfg.GatewayURL != "":
		src := NewHTTPSource(cfg.GatewayURL, cfg.SiteID, cfg.HeartbeatInterval)
		src.client.HTTPClient = cfg.GatewayClient
		return src
	}
	return nil
}
