package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
)

// PermanentError marks a handler error that no redelivery can fix (a
// malformed body, an unknown schema version): Consume dead-letters the
// message at once with Reason as its DeadLetterReason and the error text as
// its DeadLetterErrorDescription, rather than retrying it MaxDeliveryCount
// times first.
type PermanentError struct {
	// Reason is a short code, e.g. "MalformedJSON" or
	// "UnknownSchemaVersion". Empty means DefaultDeadLetterReason.
	Reason string
	Err    error
}

// DefaultDeadLetterReason is the reason of a PermanentError without one.
const DefaultDeadLetterReason = "PermanentError"

func (e *PermanentError) Error() string {
	if e.Err == nil {
		return e.reason()
	}
	return e.Err.Error()
}

func (e *PermanentError) Unwrap() error { return e.Err }

func (e *PermanentError) reason() string {
	if e.Reason == "" {
		return DefaultDeadLetterReason
	}
	return e.Reason
}

// Permanent marks err as permanent (reason DefaultDeadLetterReason). It
// returns nil for nil.
func Permanent(err error) error { return PermanentReason(DefaultDeadLetterReason, err) }

// PermanentReason marks err as permanent with a dead-letter reason. It
// returns nil for nil.
func PermanentReason(reason string, err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Reason: reason, Err: err}
}

// ConsumeOptions configures Consume. The zero value is usable.
type ConsumeOptions struct {
	// Concurrency is how many handlers run at once. Default 1.
	Concurrency int
	// RenewEvery is how often the lock of a running handler's message is
	// renewed. Default: half of what the lock had left when it was taken or
	// last renewed (LockDuration/2), read from Delivery.LockedUntil with the
	// local clock, so it follows a Service Bus entity's lock duration
	// without configuration.
	RenewEvery time.Duration
	// SettleTimeout bounds each Complete, Abandon or DeadLetter. Settling
	// goes on after ctx is done, so a shutdown does not strand finished
	// work. Default 30 s.
	SettleTimeout time.Duration
	// Prefetch is how many messages beyond Concurrency are received ahead,
	// to wait for a free handler: receiving (a commit on the embedded
	// queue, a round trip to Service Bus) then overlaps the handlers rather
	// than waiting for one to finish, which pays when handlers are short.
	// A prefetched message's lock runs while it waits and is not renewed,
	// so keep Prefetch/Concurrency handler durations well inside the lock
	// duration: one whose lock expired before a handler was free is left
	// for redelivery, and one still waiting when ctx is done is abandoned.
	// Default 0, as Service Bus's PrefetchCount.
	Prefetch int
	// Logger defaults to slog.Default(). Consume logs message IDs, sequence
	// numbers, delivery counts and errors, never bodies.
	Logger *slog.Logger
}

// Receive retry backoff, for a broker that is briefly unreachable.
const (
	minReceiveBackoff = 100 * time.Millisecond
	maxReceiveBackoff = 30 * time.Second
	minRenewEvery     = 10 * time.Millisecond
)

// Consume receives from r and runs handle on each message until ctx is
// done, then waits for running handlers and settlements and returns nil.
// What handle returns decides the message's fate:
//
//   - nil: Complete. Since Complete comes only after handle returned, the
//     handler's effect must be durable when it returns (at-least-once: a
//     crash in between delivers the message again, so handlers are
//     idempotent, e.g. keyed by Message.ID).
//   - a *PermanentError in the chain (see Permanent): DeadLetter with its
//     reason and the error text as description.
//   - any other error: Abandon; the message comes back with DeliveryCount+1
//     and, after MaxDeliveryCount deliveries, the queue dead-letters it with
//     reason MaxDeliveryCountExceeded. A panic counts as such an error.
//
// While handle runs, Consume renews the message's lock. Consume returns an
// error only when receiving cannot succeed (closed queue, unknown queue,
// bad credentials); other receive errors are logged and retried with
// backoff.
func Consume(ctx context.Context, r Receiver, handle func(context.Context, Delivery) error, opts ConsumeOptions) error {
	c := &consumer{r: r, handle: handle, opts: opts}
	c.setDefaults()
	// Three bounds. accepted: messages received whose handler has not
	// returned, running or waiting for a handler (Concurrency + Prefetch).
	// held: messages received and not yet settled, which adds those whose
	// settlement is in progress: a handler slot is free again as soon as its
	// handler returns, so the next handler runs while earlier messages'
	// settlements commit (together, on the embedded queue). running: handlers
	// running (Concurrency).
	accepted := make(chan struct{}, c.opts.Concurrency+c.opts.Prefetch)
	held := make(chan struct{}, cap(accepted)+settleAhead(c.opts.Concurrency))
	running := make(chan struct{}, c.opts.Concurrency)
	ready := make(chan Delivery, cap(accepted))
	received := make(chan error, 1)
	go func() {
		defer close(ready)
		received <- c.receive(ctx, accepted, held, ready)
	}()
	var wg sync.WaitGroup
	// Dispatch in the order received, one handler slot at a time. Once ctx
	// is done no handler starts: what was received and not yet handed to
	// one (prefetched) is abandoned.
	for d := range ready {
		wg.Add(1)
		waited, slot := false, false
		if ctx.Err() == nil {
			select {
			case running <- struct{}{}:
				slot = true
			default:
				waited = true
				select {
				case running <- struct{}{}:
					slot = true
				case <-ctx.Done():
				}
			}
		}
		if !slot {
			go func() {
				defer wg.Done()
				defer func() { <-accepted; <-held }()
				c.unprocessed(ctx, d)
			}()
			continue
		}
		go func() {
			defer wg.Done()
			defer func() { <-held }()
			c.process(ctx, d, waited, func() { <-running; <-accepted })
		}()
	}
	wg.Wait()
	return <-received
}

// receive receives while there is room under accepted and held, and hands
// the deliveries to ready, until ctx is done (nil) or receiving cannot
// succeed (the error).
func (c *consumer) receive(ctx context.Context, accepted, held chan struct{}, ready chan<- Delivery) error {
	backoff := minReceiveBackoff
	for {
		// Hold room before receiving: a message locked with nowhere to
		// go would only sit out its lock.
		select {
		case held <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		select {
		case accepted <- struct{}{}:
		case <-ctx.Done():
			<-held
			return nil
		}
		n := 1 + takeFree(accepted, held)
		ds, err := c.r.Receive(ctx, n)
		if err != nil {
			release(accepted, n)
			release(held, n)
			switch {
			case ctx.Err() != nil:
				return nil
			case fatalReceive(err):
				return fmt.Errorf("queue: consume: %w", err)
			}
			c.opts.Logger.Warn("receive failed; retrying", "retry_in", backoff, "err", err)
			if modelfleet.Sleep(ctx, backoff) != nil {
				return nil
			}
			backoff = min(2*backoff, maxReceiveBackoff)
			continue
		}
		backoff = minReceiveBackoff
		for range len(ds) - n { // a Receiver that returned more than asked
			held <- struct{}{}
			accepted <- struct{}{}
		}
		release(accepted, n-len(ds))
		release(held, n-len(ds))
		for _, d := range ds {
			ready <- d // never blocks: ready has room for all accepted
		}
	}
}

// settleAhead is how many handled messages may wait for their settlement
// while the handlers take on more: as many as there are handlers, at least
// 8, so that a single handler's settlements commit in groups too.
func settleAhead(concurrency int) int { return max(concurrency, 8) }

// takeFree takes every pair of free accepted and held slots there is right
// now and says how many.
func takeFree(accepted, held chan struct{}) int {
	n := 0
	for {
		select {
		case held <- struct{}{}:
		default:
			return n
		}
		select {
		case accepted <- struct{}{}:
			n++
		default:
			<-held
			return n
		}
	}
}

func release(slots chan struct{}, n int) {
	for range n {
		<-slots
	}
}

// fatalReceive reports whether a receive error will not go away by retrying.
func fatalReceive(err error) bool {
	if errors.Is(err, ErrClosed) {
		return true
	}
	switch modelfleet.ErrorCode(err) {
	case modelfleet.EINVALID, modelfleet.ENOTFOUND, modelfleet.EUNAUTHORIZED, modelfleet.EFORBIDDEN:
		return true
	}
	return false
}

type consumer struct {
	r      Receiver
	handle func(context.Context, Delivery) error
	opts   ConsumeOptions
}

func (c *consumer) setDefaults() {
	if c.opts.Concurrency <= 0 {
		c.opts.Concurrency = 1
	}
	c.opts.Prefetch = max(c.opts.Prefetch, 0)
	if c.opts.SettleTimeout <= 0 {
		c.opts.SettleTimeout = 30 * time.Second
	}
	if c.opts.Logger == nil {
		c.opts.Logger = slog.Default()
	}
}

// unprocessed releases a prefetched message that no handler will run
// before ctx is done, so that it is delivered again at once rather than
// when its lock expires.
func (c *consumer) unprocessed(ctx context.Context, d Delivery) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.SettleTimeout)
	defer cancel()
	if err := c.r.Abandon(sctx, d); err != nil {
		c.opts.Logger.Warn("releasing a prefetched message failed; it will be delivered again once its lock expires", "message_id", d.ID, "sequence", d.SequenceNumber, "err", err)
	}
}

// process runs the handler with lock renewal, calls handled, then settles
// the message. waited says it was prefetched and waited for a handler.
func (c *consumer) process(ctx context.Context, d Delivery, waited bool, handled func()) {
	log := c.opts.Logger.With("message_id", d.ID, "sequence", d.SequenceNumber, "delivery_count", d.DeliveryCount)
	start := time.Now()
	if waited && !d.LockedUntil.IsZero() && !start.Before(d.LockedUntil) {
		// Prefetched, and its lock ran out while it waited: it may be
		// another consumer's now, and settling it would fail anyway.
		handled()
		log.Warn("lock expired before a handler was free; the message will be delivered again (lower Prefetch)")
		return
	}

	// The renewer updates its own copy's LockedUntil; the handler has another.
	held := d
	renewCtx, stopRenew := context.WithCancel(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		c.renew(renewCtx, &held, log)
	}()
	err := c.call(ctx, d, log)
	stopRenew()
	<-renewed
	handled()

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.SettleTimeout)
	defer cancel()
	var perm *PermanentError
	var serr error
	switch {
	case err == nil:
		serr = c.r.Complete(sctx, held)
		if serr == nil {
			log.Debug("message completed", "duration", time.Since(start))
		}
	case errors.As(err, &perm):
		log.Error("message dead-lettered", "reason", perm.reason(), "err", err)
		serr = c.r.DeadLetter(sctx, held, perm.reason(), err.Error())
	default:
		log.Warn("handler failed; message abandoned for redelivery", "err", err)
		serr = c.r.Abandon(sctx, held)
	}
	switch {
	case serr == nil:
	case modelfleet.ErrorCode(serr) == modelfleet.ECONFLICT:
		log.Warn("settling message failed: lock lost; it will be delivered again", "err", serr)
	default:
		log.Error("settling message failed; it will be delivered again once its lock expires", "err", serr)
	}
}

// call runs the handler, turning a panic into an error so that one bad
// message cannot take the consumer down; the queue dead-letters it after
// MaxDeliveryCount tries.
func (c *consumer) call(ctx context.Context, d Delivery, log *slog.Logger) (err error) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("handler panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return c.handle(ctx, d)
}

// renew keeps d's lock until ctx is done. It stops early when the lock is
// lost: the message will be delivered again and nothing here can prevent it.
func (c *consumer) renew(ctx context.Context, d *Delivery, log *slog.Logger) {
	for {
		every := c.opts.RenewEvery
		if every <= 0 {
			every = time.Until(d.LockedUntil) / 2
		}
		if modelfleet.Sleep(ctx, max(every, minRenewEvery)) != nil {
			return
		}
		err := c.r.RenewLock(ctx, d)
		switch {
		case err == nil:
			log.Debug("lock renewed", "locked_until", d.LockedUntil)
		case ctx.Err() != nil:
			return
		case modelfleet.ErrorCode(err) == modelfleet.ECONFLICT:
			log.Warn("lock lost while the handler runs; the message will be delivered again", "err", err)
			return
		case time.Now().After(d.LockedUntil):
			log.Warn("renewing the lock failed and it has expired; the message will be delivered again", "err", err)
			return
		default:
			log.Warn("renewing the lock failed; retrying", "err", err)
		}
	}
}
