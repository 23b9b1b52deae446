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
// done, then waits for running handlers and returns nil. What handle
// returns decides the message's fate:
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
	slots := make(chan struct{}, c.opts.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	backoff := minReceiveBackoff
	for {
		// Hold a free slot before receiving: a message locked while every
		// handler is busy would only sit out its lock.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		n := 1 + takeFree(slots)
		ds, err := r.Receive(ctx, n)
		if err != nil {
			release(slots, n)
			switch {
			case ctx.Err() != nil:
				return nil
			case fatalReceive(err):
				return fmt.Errorf("queue: consume: %w", err)
			}
			c.opts.Logger.Warn("receive failed; retrying", "retry_in", backoff, "err", err)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, maxReceiveBackoff)
			continue
		}
		backoff = minReceiveBackoff
		for range len(ds) - n { // a Receiver that returned more than asked
			slots <- struct{}{}
		}
		release(slots, n-len(ds))
		for _, d := range ds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				c.process(ctx, d)
			}()
		}
	}
}

// takeFree takes every slot that is free right now and says how many.
func takeFree(slots chan struct{}) int {
	n := 0
	for {
		select {
		case slots <- struct{}{}:
			n++
		default:
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
	case modelfleet.EINVALID, modelfleet.ENOTFOUND, modelfleet.EUNAUTHORIZED:
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
	if c.opts.SettleTimeout <= 0 {
		c.opts.SettleTimeout = 30 * time.Second
	}
	if c.opts.Logger == nil {
		c.opts.Logger = slog.Default()
	}
}

// process runs the handler with lock renewal, then settles the message.
func (c *consumer) process(ctx context.Context, d Delivery) {
	log := c.opts.Logger.With("message_id", d.ID, "sequence", d.SequenceNumber, "delivery_count", d.DeliveryCount)
	start := time.Now()

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
		if !sleep(ctx, max(every, minRenewEvery)) {
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

// sleep waits d or until ctx is done, reporting whether it waited fully.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
