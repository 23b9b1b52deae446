package agent

import (
	"context"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/fleet"
)

// reportTimeout bounds one report to the gateway.
const reportTimeout = 10 * time.Second

// HTTPSource is the gateway's site directory, reached outbound: Next long
// polls the site's desired state (GET /api/sites/{id}/desired), waiting up
// to its wait for a revision above the one applied, and Report sends the
// actual state (PUT /api/sites/{id}/actual).
type HTTPSource struct {
	client *fleet.Client
	site   string
	wait   time.Duration
}

// NewHTTPSource returns the desired state of site at the gateway at
// gatewayURL, long polled for up to wait: the interval at which an
// unchanged site re-reports.
func NewHTTPSource(gatewayURL, site string, wait time.Duration) *HTTPSource {
	return &HTTPSource{client: &fleet.Client{BaseURL: gatewayURL}, site: site, wait: wait}
}

// Next long polls the site's desired state.
func (s *HTTPSource) Next(ctx context.Context, after int64) (modelfleet.Desired, error) {
	return s.client.Desired(ctx, s.site, after, s.wait)
}

// Report sends the site's actual state to the directory.
func (s *HTTPSource) Report(ctx context.Context, actual modelfleet.Actual) error {
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	return s.client.ReportActual(ctx, actual)
}
