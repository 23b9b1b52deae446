package modelfleet

import (
	"context"
	"time"
)

// Sleep waits for d, or until ctx is done, whichever comes first. It returns
// nil when it waited the full d, and ctx.Err() when ctx ended the wait; a ctx
// that is already done wins even when d <= 0, so a loop that sleeps between
// attempts stops on cancellation whatever its delay. The timer is stopped on
// return, so an interrupted long sleep holds no resources.
func Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
