package agent

import (
	"context"

	"github.com/modelfleet/modelfleet"
)

// DesiredSource is where a site's desired state comes from, and where its
// agent reports what it serves: the gateway (HTTPSource), or a file mounted
// into the agent's pod (FileSource); NewSource picks one from a Config.
//
// The agent's loop calls Next, applies a revision above the one it holds,
// and calls Report with what it serves; whatever a source returns, the site
// keeps serving what it has. One loop calls a source: its methods need not
// be safe for concurrent use.
type DesiredSource interface {
	// Next returns the site's desired state once its revision is above
	// after (-1: any). A source may return earlier with the revision it
	// has: a long poll whose wait ended returns the same revision, and the
	// loop then re-reports its figures. An error means no desired state
	// this time: the loop backs off and calls again. An error with code
	// modelfleet.ENOTFOUND says the source does not know the site yet: the
	// loop reports, which registers it.
	Next(ctx context.Context, after int64) (modelfleet.Desired, error)
	// Report delivers the site's actual state, which carries the site's
	// directory record: the report is the site's heartbeat. An error with
	// code EINVALID or ETOOLARGE is final for that report; any other is
	// retried with backoff.
	Report(ctx context.Context, actual modelfleet.Actual) error
}
