package agent

import (
	"context"
	"sync"
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
//
// The release key set every desired state carries does not travel with
// every poll: Next names the set it last received (its tag), the gateway
// leaves it out of the answer while it holds the same one, and Next puts
// the set it kept back into the desired state it returns, so the site
// checks what it always checked (Site.learnKeys).
type HTTPSource struct {
	client *fleet.Client
	site   string
	wait   time.Duration

	mu      sync.Mutex
	keys    *modelfleet.Envelope // the release key set last received
	keysTag string               // its tag
	// held are the release statements the last answer's versions named,
	// by ref: the next poll says so, and the gateway leaves them out.
	held map[string]*modelfleet.Envelope
}

// NewHTTPSource returns the desired state of site at the gateway at
// gatewayURL, long polled for up to wait: the interval at which an
// unchanged site re-reports.
func NewHTTPSource(gatewayURL, site string, wait time.Duration) *HTTPSource {
	return &HTTPSource{client: &fleet.Client{BaseURL: gatewayURL}, site: site, wait: wait, held: map[string]*modelfleet.Envelope{}}
}

// Next long polls the site's desired state.
func (s *HTTPSource) Next(ctx context.Context, after int64) (modelfleet.Desired, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ds, gatewayKeys, err := s.client.AgentDesired(ctx, s.site, after, s.wait, s.keysTag, s.held)
	if err != nil {
		return ds, err
	}
	switch {
	case ds.ReleaseKeys != nil:
		if tag := ds.ReleaseKeys.Tag(); tag != s.keysTag {
			s.keys, s.keysTag = ds.ReleaseKeys, tag
		} else {
			// The same set again (a gateway that sends it every time):
			// the one kept, so the site sees the envelope it checked.
			ds.ReleaseKeys = s.keys
		}
	case gatewayKeys != "" && gatewayKeys == s.keysTag:
		// Left out: the gateway holds the set this site has.
		ds.ReleaseKeys = s.keys
	default:
		// The gateway has no key set (any more): nothing to keep.
		s.keys, s.keysTag = nil, ""
	}
	return ds, nil
}

// Report sends the site's actual state to the directory.
func (s *HTTPSource) Report(ctx context.Context, actual modelfleet.Actual) error {
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	return s.client.ReportActual(ctx, actual)
}
