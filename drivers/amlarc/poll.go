package amlarc

import (
	"context"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// wait drives a long-running operation's poller to the end, telling
// Progress about every poll: PollUntilDone would block silently for
// minutes (a deployment on a cluster takes several), while an activity or a
// reconciler must show it is alive. An operation that ends in failure is
// the deployment's own failure (bad image, probe never ready): permanent
// for this desired state; a poll that cannot reach ARM is retried later.
func wait[T any](ctx context.Context, d *Driver, p *runtime.Poller[T], ev Event) (T, error) {
	d.progress(ev, "started")
	for !p.Done() {
		if _, err := p.Poll(ctx); err != nil {
			var zero T
			d.progress(ev, "failed")
			return zero, classify(err)
		}
		if p.Done() {
			break
		}
		d.progress(ev, "polling")
		select {
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		case <-time.After(d.cfg.PollFrequency):
		}
	}
	res, err := p.Result(ctx)
	if err != nil {
		d.progress(ev, "failed")
		if ctx.Err() != nil {
			return res, err
		}
		return res, permanent{err}
	}
	d.progress(ev, "succeeded")
	return res, nil
}

func (d *Driver) progress(ev Event, status string) {
	if d.cfg.Progress != nil {
		ev.Status = status
		d.cfg.Progress(ev)
	}
}
