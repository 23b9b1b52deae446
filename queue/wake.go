package queue

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
)

// wake is what both queue implementations block their receivers on: a
// channel closed and replaced at every broadcast (a send, an abandon), and
// one closed when the queue closes.
type wake struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced when a message may have become available
	closed  chan struct{}
}

func newWake() wake { return wake{changed: make(chan struct{}), closed: make(chan struct{})} }

func (w *wake) isClosed() bool {
	select {
	case <-w.closed:
		return true
	default:
		return false
	}
}

// signal returns a channel closed at the next broadcast. Receive takes it
// before it looks for messages, so a send in between is never missed.
func (w *wake) signal() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

// broadcast wakes every waiting Receive.
func (w *wake) broadcast() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.changed)
	w.changed = make(chan struct{})
}

// lockFunc locks up to max available messages; finding none, it reports
// the earliest expiry among the held locks (zero if none).
type lockFunc func(ctx context.Context, max int) ([]Delivery, time.Time, error)

// receive is Receive for both implementations: lock a batch, or wait until
// a broadcast, the earliest lock expiry, poll (0: never) or the queue's
// closing, and look again.
func (w *wake) receive(ctx context.Context, max int, lock lockFunc, poll time.Duration, now func() time.Time) ([]Delivery, error) {
	if max <= 0 {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "receive: max must be positive, got %d", max)
	}
	for {
		if w.isClosed() {
			return nil, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		woken := w.signal()
		ds, next, err := lock(ctx, max)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("queue: receive: %w", err)
		}
		if len(ds) > 0 {
			return ds, nil
		}
		wait := poll
		if !next.IsZero() && (wait == 0 || next.Sub(now()) < wait) {
			wait = max0(next.Sub(now()))
		}
		var timeout <-chan time.Time
		var t *time.Timer
		if wait > 0 || !next.IsZero() {
			t = time.NewTimer(wait)
			timeout = t.C
		}
		select {
		case <-ctx.Done():
		case <-w.closed:
		case <-woken:
		case <-timeout:
		}
		if t != nil {
			t.Stop()
		}
	}
}

func max0(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d
}
