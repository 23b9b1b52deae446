package queue

import (
	"errors"

	"go.etcd.io/bbolt"
)

// Group commit. Every write of the queue (Send, the lock a Receive takes,
// Complete, Abandon, DeadLetter, RenewLock) is one bbolt transaction, and
// each commit ends in an fdatasync: a consumer completing its deliveries one
// by one spends its time waiting for the disk, one message per sync. So
// writes that arrive while a commit is in progress wait for it to end and
// then commit together, in one transaction and one sync, as databases group
// their log writes. Nobody waits for company: a write that finds the queue
// idle commits at once, alone. Each caller still returns only once its own
// write is durable, and sees its own error.

// maxGroup bounds the writes one transaction takes, so that it stays small
// whatever the number of callers.
const maxGroup = 256

// writeOp is one caller's write.
type writeOp struct {
	fn  func(tx *bbolt.Tx) error
	err error
	// done receives true when the op has committed (or failed: see err),
	// false when its caller is to lead the next group.
	done chan bool
}

// cleanError is an error that a write returned before writing anything,
// such as a lost lock: it fails that write alone, and the rest of its
// group commits. Any other error rolls the group back and its writes are
// run again one transaction each, so that one write's failure never
// becomes its neighbours'.
type cleanError struct{ err error }

func (e *cleanError) Error() string { return e.err.Error() }

func (e *cleanError) Unwrap() error { return e.err }

// clean marks err as returned before any write (nil stays nil).
func clean(err error) error {
	if err == nil {
		return nil
	}
	return &cleanError{err}
}

// update runs fn in a write transaction, shared with the writes of other
// callers waiting at the same time, and returns once that transaction has
// committed. fn may run more than once (in a group, then alone if the group
// fails), so it must reset whatever it records outside the transaction.
func (q *Queue) update(fn func(tx *bbolt.Tx) error) error {
	op := &writeOp{fn: fn, done: make(chan bool, 1)}
	q.wmu.Lock()
	q.pending = append(q.pending, op)
	lead := !q.committing
	q.committing = true
	q.wmu.Unlock()
	if !lead {
		if committed := <-op.done; committed {
			return op.err
		}
	}
	q.lead()
	return op.err
}

// lead commits the pending writes (the leader's own among them) and hands
// the lead to the first write that arrived meanwhile: every caller leads at
// most one group, its own, so none waits for more than the group before.
func (q *Queue) lead() {
	q.wmu.Lock()
	n := min(len(q.pending), maxGroup)
	group := q.pending[:n:n]
	q.pending = q.pending[n:]
	if len(q.pending) == 0 {
		q.pending = nil // let the backing array go
	}
	q.wmu.Unlock()

	q.commitGroup(group)

	q.wmu.Lock()
	if len(q.pending) > 0 {
		q.pending[0].done <- false
	} else {
		q.committing = false
	}
	q.wmu.Unlock()
	for _, op := range group {
		op.done <- true // buffered: the leader's own is never read
	}
}

// errGroupFailed rolls a group back when one of its writes failed.
var errGroupFailed = errors.New("queue: a write in the group failed")

func (q *Queue) commitGroup(group []*writeOp) {
	q.commits.Add(1)
	if len(group) == 1 {
		group[0].err = unclean(q.db.Update(group[0].fn))
		return
	}
	err := q.db.Update(func(tx *bbolt.Tx) error {
		for _, op := range group {
			op.err = op.fn(tx)
			var ce *cleanError
			switch {
			case op.err == nil:
			case errors.As(op.err, &ce):
				op.err = ce.err
			default:
				return errGroupFailed
			}
		}
		return nil
	})
	if err == nil {
		return
	}
	for _, op := range group {
		q.commits.Add(1)
		op.err = unclean(q.db.Update(op.fn))
	}
}

// unclean strips the cleanError mark, which only commitGroup reads.
func unclean(err error) error {
	var ce *cleanError
	if errors.As(err, &ce) {
		return ce.err
	}
	return err
}
