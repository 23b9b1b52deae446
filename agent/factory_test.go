package agent

import (
	"testing"
	"time"
)

// NewSource takes the mounted file over the gateway, and no source when the
// site has neither; both wait the heartbeat interval.
func TestNewSourceChoosesFromConfig(t *testing.T) {
	if src := NewSource(Config{SiteID: "s1"}, nil); src != nil {
		t.Errorf("no gateway, no file: %T, want none", src)
	}
	if src, ok := NewSource(Config{SiteID: "s1", GatewayURL: "http://gw:8080"}, nil).(*HTTPSource); !ok ||
		src.site != "s1" || src.client.BaseURL != "http://gw:8080" || src.wait != DefaultHeartbeat {
		t.Errorf("gateway: %+v", src)
	}
	cfg := Config{SiteID: "s1", GatewayURL: "http://gw:8080", DesiredFile: "/etc/modelfleet/desired.json", HeartbeatInterval: time.Second}
	if src, ok := NewSource(cfg, nil).(*FileSource); !ok || src.path != cfg.DesiredFile || src.site != "s1" || src.interval != time.Second {
		t.Errorf("file and gateway: %+v, want the file", src)
	}
}
