package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/modelfleet/modelfleet"
	"go.etcd.io/bbolt"
)

// Settlement, as Service Bus's PeekLock receive mode defines it: each
// operation needs the current lock token of the message.

// Complete removes a delivered message for good.
func (q *Queue) Complete(ctx context.Context, d Delivery) error {
	return q.settle("complete", d, func(tx *bbolt.Tx, key []byte, _ lockState, _ time.Time) error {
		if err := removeActive(tx, key); err != nil {
			return err
		}
		return incr(tx, counterCompleted)
	})
}

// Abandon releases the lock so the message is delivered again at once, with
// DeliveryCount+1. Like Service Bus, a message that has used up its
// deliveries is dead-lettered right away rather than on the next Receive.
func (q *Queue) Abandon(ctx context.Context, d Delivery) error {
	err := q.settle("abandon", d, func(tx *bbolt.Tx, key []byte, st lockState, now time.Time) error {
		if int(st.deliveries) >= q.opts.MaxDeliveryCount {
			return moveToDeadLetter(tx, key, st, ReasonMaxDeliveryCountExceeded, maxDeliveriesDescription(st), now)
		}
		st.lockedUntil, st.token = 0, [16]byte{}
		return tx.Bucket(bucketState).Put(key, st.encode())
	})
	if err == nil {
		q.broadcast()
	}
	return err
}

// DeadLetter moves a delivered message to the dead-letter sub-queue with a
// reason and description, as Service Bus's DeadLetterMessage does.
func (q *Queue) DeadLetter(ctx context.Context, d Delivery, reason, description string) error {
	return q.settle("dead-letter", d, func(tx *bbolt.Tx, key []byte, st lockState, now time.Time) error {
		return moveToDeadLetter(tx, key, st, reason, description, now)
	})
}

// RenewLock extends the lock by LockDuration from now and updates
// d.LockedUntil.
func (q *Queue) RenewLock(ctx context.Context, d *Delivery) error {
	var until time.Time
	err := q.settle("renew lock", *d, func(tx *bbolt.Tx, key []byte, st lockState, now time.Time) error {
		until = now.Add(q.opts.LockDuration).UTC()
		st.lockedUntil = until.UnixNano()
		return tx.Bucket(bucketState).Put(key, st.encode())
	})
	if err == nil {
		d.LockedUntil = until
	}
	return err
}

// settle runs fn in a write transaction (shared with concurrent writes: see
// commit.go) if d's lock is still held: same token and not expired.
// Otherwise it fails with ECONFLICT, as Service Bus fails with
// MessageLockLost, also for a lock that merely expired.
func (q *Queue) settle(op string, d Delivery, fn func(tx *bbolt.Tx, key []byte, st lockState, now time.Time) error) error {
	if q.isClosed() {
		return ErrClosed
	}
	token, err := parseToken(d.LockToken)
	if err != nil {
		return err
	}
	if d.SequenceNumber <= 0 {
		return errLockLost(d)
	}
	now := q.opts.Now()
	err = q.update(func(tx *bbolt.Tx) error {
		key := seqKey(uint64(d.SequenceNumber))
		v := tx.Bucket(bucketState).Get(key)
		if v == nil {
			return clean(errLockLost(d))
		}
		st, err := decodeState(v)
		if err != nil {
			return clean(err)
		}
		if st.token != token || !st.locked(now) {
			return clean(errLockLost(d))
		}
		return fn(tx, key, st, now)
	})
	if err != nil && modelfleet.ErrorCode(err) == modelfleet.EINTERNAL {
		return fmt.Errorf("queue: %s message %d: %w", op, d.SequenceNumber, err)
	}
	return err
}
