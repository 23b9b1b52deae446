package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/modelfleet/modelfleet"
	"go.etcd.io/bbolt"
)

// Stats are a queue's counts, for operators and the CLI.
type Stats struct {
	// Active counts the messages in the queue, locked or not, as Service
	// Bus's ActiveMessageCount does.
	Active int64 `json:"active"`
	// Locked counts the active messages whose lock has not expired.
	Locked       int64 `json:"locked"`
	DeadLettered int64 `json:"deadLettered"`
	// Sent, Completed and Duplicates count since the file was created; a
	// duplicate is a send dropped by duplicate detection.
	Sent       int64 `json:"sent"`
	Completed  int64 `json:"completed"`
	Duplicates int64 `json:"duplicates"`
}

// PeekedMessage is a message seen without locking it, as Service Bus's
// PeekMessages shows it. LockedUntil is set only while it is locked; the
// DeadLetter fields only in the dead-letter sub-queue.
type PeekedMessage struct {
	Message
	SequenceNumber             int64     `json:"sequenceNumber"`
	DeliveryCount              int       `json:"deliveryCount"`
	LockedUntil                time.Time `json:"lockedUntil,omitzero"`
	DeadLetterReason           string    `json:"deadLetterReason,omitempty"`
	DeadLetterErrorDescription string    `json:"deadLetterErrorDescription,omitempty"`
	DeadLetteredAt             time.Time `json:"deadLetteredAt,omitzero"`
}

// MaxPeek bounds one Peek: a page of a deep queue, and a response that stays
// in the tens of MiB even when every message has the maximum size.
const MaxPeek = 100

// Stats returns the queue's counts.
func (q *Queue) Stats() (Stats, error) {
	if q.isClosed() {
		return Stats{}, ErrClosed
	}
	now := q.opts.Now()
	var s Stats
	err := q.db.View(func(tx *bbolt.Tx) error {
		err := tx.Bucket(bucketState).ForEach(func(k, v []byte) error {
			st, err := decodeState(v)
			if err != nil {
				return fmt.Errorf("message %d: %w", seqOf(k), err)
			}
			s.Active++
			if st.locked(now) {
				s.Locked++
			}
			return nil
		})
		s.DeadLettered = int64(tx.Bucket(bucketDeadLetter).Stats().KeyN)
		c := tx.Bucket(bucketCounters)
		s.Sent = int64(counter(c, counterSent))
		s.Completed = int64(counter(c, counterCompleted))
		s.Duplicates = int64(counter(c, counterDuplicates))
		return err
	})
	if err != nil {
		return Stats{}, fmt.Errorf("queue: stats: %w", err)
	}
	return s, nil
}

// Peek returns up to max messages (at most MaxPeek) with sequence number
// from or later, from the active queue or the dead-letter sub-queue,
// without locking them or counting a delivery.
func (q *Queue) Peek(from int64, max int, deadLetter bool) ([]PeekedMessage, error) {
	if max <= 0 || from < 0 {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "peek: want from >= 0 and max > 0, got from=%d max=%d", from, max)
	}
	if q.isClosed() {
		return nil, ErrClosed
	}
	max = min(max, MaxPeek)
	now := q.opts.Now()
	out := []PeekedMessage{}
	err := q.db.View(func(tx *bbolt.Tx) error {
		bucket := bucketMessages
		if deadLetter {
			bucket = bucketDeadLetter
		}
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.Seek(seqKey(uint64(from))); k != nil && len(out) < max; k, v = c.Next() {
			var p PeekedMessage
			if deadLetter {
				if err := json.Unmarshal(v, &p); err != nil {
					return fmt.Errorf("dead-lettered message %d: %w", seqOf(k), err)
				}
				out = append(out, p)
				continue
			}
			if v == nil {
				v = record(tx.Bucket(bucket), k)
			}
			m, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("message %d: %w", seqOf(k), err)
			}
			p.Message = m
			st, err := decodeState(tx.Bucket(bucketState).Get(k))
			if err != nil {
				return fmt.Errorf("message %d: %w", seqOf(k), err)
			}
			p.SequenceNumber, p.DeliveryCount = int64(seqOf(k)), int(st.deliveries)
			if st.locked(now) {
				p.LockedUntil = time.Unix(0, st.lockedUntil).UTC()
			}
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: peek: %w", err)
	}
	return out, nil
}

// redriveBatch bounds one Redrive transaction, so a redrive of a large
// dead-letter queue neither holds the write lock long nor builds a huge
// transaction.
const redriveBatch = 256

// Redrive moves up to max dead-lettered messages, oldest first, back to the
// end of the active queue as new messages: new sequence number and enqueue
// time, DeliveryCount 0, dead-letter properties dropped. It bypasses
// duplicate detection, so a message redriven within the window of its
// first send is delivered all the same; that is the point of a redrive
// (Service Bus Explorer's resubmit also sends a fresh copy). It returns how
// many it moved; on a ctx error, those moved until then stay moved.
func (q *Queue) Redrive(ctx context.Context, max int) (int, error) {
	if max <= 0 {
		return 0, modelfleet.Errorf(modelfleet.EINVALID, "redrive: max must be positive, got %d", max)
	}
	moved := 0
	for moved < max {
		if err := ctx.Err(); err != nil {
			return moved, err
		}
		if q.isClosed() {
			return moved, ErrClosed
		}
		want := min(max-moved, redriveBatch)
		n, err := q.redriveBatch(want)
		moved += n
		if n > 0 {
			q.broadcast()
		}
		if err != nil {
			return moved, fmt.Errorf("queue: redrive: %w", err)
		}
		if n < want {
			break // dead-letter queue drained
		}
	}
	return moved, nil
}

func (q *Queue) redriveBatch(max int) (int, error) {
	now := q.opts.Now().UTC()
	n := 0
	err := q.db.Update(func(tx *bbolt.Tx) error {
		n = 0
		dead := tx.Bucket(bucketDeadLetter)
		var keys [][]byte
		var msgs []Message
		c := dead.Cursor()
		for k, v := c.First(); k != nil && len(keys) < max; k, v = c.Next() {
			var p PeekedMessage
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("dead-lettered message %d: %w", seqOf(k), err)
			}
			p.Message.EnqueuedAt = now
			keys, msgs = append(keys, cloneKey(k)), append(msgs, p.Message)
		}
		for i, k := range keys {
			if err := appendActive(tx, msgs[i]); err != nil {
				return err
			}
			if err := dead.Delete(k); err != nil {
				return err
			}
		}
		n = len(keys)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
