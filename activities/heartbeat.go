package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
)

// HeartbeatEvery is how often a long activity without progress of its own
// to report heartbeats (keepAlive). Workflows give such activities a
// heartbeat timeout a few times this, so that a worker that died mid-way
// (SIGKILL, a lost node) is noticed and the activity retried within
// seconds, not after its whole start-to-close timeout.
const HeartbeatEvery = 5 * time.Second

// keepAlive heartbeats every HeartbeatEvery until the returned stop is
// called; outside an activity (a direct call in a test) it does nothing.
func keepAlive(ctx context.Context) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	activity.RecordHeartbeat(ctx, "started")
	go func() {
		t := time.NewTicker(HeartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx, "running")
			}
		}
	}()
	return func() { close(done) }
}
