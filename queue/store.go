package queue

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/modelfleet/modelfleet"
	"go.etcd.io/bbolt"
)

// bbolt buckets. Keys of messages, state and deadletter are the message's
// sequence number, big-endian, so cursors walk them in enqueue order.
var (
	bucketMessages   = []byte("messages")   // seq -> Message record (record.go), immutable while active
	bucketState      = []byte("state")      // seq -> lockState (28 bytes), one per active message
	bucketDeadLetter = []byte("deadletter") // seq -> PeekedMessage JSON
	bucketDedup      = []byte("dedup")      // message id -> unix nanos it was first accepted
	bucketDedupAge   = []byte("dedupage")   // unix nanos + message id -> empty, pruned oldest first
	bucketCounters   = []byte("counters")   // counter name -> uint64
	allBuckets       = [][]byte{bucketMessages, bucketState, bucketDeadLetter, bucketDedup, bucketDedupAge, bucketCounters}
)

// Counters kept for Stats.
var (
	counterSent       = []byte("sent")
	counterCompleted  = []byte("completed")
	counterDuplicates = []byte("duplicates")
)

// lockState is an active message's delivery state. It is kept apart from
// the message so that Receive scans small fixed records, never bodies, and
// it is persisted so a lock outlives a restart only until it expires.
type lockState struct {
	deliveries  uint32
	lockedUntil int64 // unix nanoseconds; 0 when never locked or released
	token       [16]byte
}

const lockStateSize = 4 + 8 + 16

func (s lockState) encode() []byte {
	b := make([]byte, lockStateSize)
	binary.BigEndian.PutUint32(b, s.deliveries)
	binary.BigEndian.PutUint64(b[4:], uint64(s.lockedUntil))
	copy(b[12:], s.token[:])
	return b
}

func decodeState(b []byte) (lockState, error) {
	if len(b) != lockStateSize {
		return lockState{}, fmt.Errorf("corrupt lock state: %d bytes, want %d", len(b), lockStateSize)
	}
	s := lockState{
		deliveries:  binary.BigEndian.Uint32(b),
		lockedUntil: int64(binary.BigEndian.Uint64(b[4:])),
	}
	copy(s.token[:], b[12:])
	return s, nil
}

func (s lockState) locked(now time.Time) bool { return s.lockedUntil > now.UnixNano() }

func (s lockState) tokenString() string { return hex.EncodeToString(s.token[:]) }

// newToken returns a random lock token; like Service Bus's it is 16 bytes.
func newToken() [16]byte {
	var t [16]byte
	_, _ = rand.Read(t[:]) // never fails (crypto/rand panics rather than return short)
	return t
}

func parseToken(s string) ([16]byte, error) {
	var t [16]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(t) {
		return t, modelfleet.Errorf(modelfleet.EINVALID, "lock token %q is not one this queue issued", truncate(s, 64))
	}
	copy(t[:], b)
	return t, nil
}

func seqKey(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func seqOf(k []byte) uint64 { return binary.BigEndian.Uint64(k) }

// cloneKey copies a key: bbolt's slices are valid only inside the transaction
// and must not be used across a write.
func cloneKey(k []byte) []byte { return bytes.Clone(k) }

// appendActive adds m at the end of the active queue, never delivered.
func appendActive(tx *bbolt.Tx, m Message) error {
	msgs := tx.Bucket(bucketMessages)
	seq, err := msgs.NextSequence()
	if err != nil {
		return err
	}
	b, err := msgs.CreateBucket(seqKey(seq))
	if err != nil {
		return err
	}
	if err := b.Put(recordKey, encodeMessage(m)); err != nil {
		return err
	}
	return tx.Bucket(bucketState).Put(seqKey(seq), lockState{}.encode())
}

// Each active message's record is the one value of a bucket of its own
// (under its sequence number in bucketMessages), not a value beside the
// others. bbolt keeps at least two values per leaf and rewrites a leaf
// whole when one of them goes, so with records as plain values, completing
// one 190 KiB signal batch copied and wrote out its neighbour as well;
// a bucket of its own holds its record on its own pages, which completing
// merely frees. Small records stay inline in the parent, as bbolt inlines
// small buckets. Files written before hold plain values, read as well.
var recordKey = []byte("m")

func removeActive(tx *bbolt.Tx, key []byte) error {
	msgs := tx.Bucket(bucketMessages)
	err := msgs.DeleteBucket(key)
	if errors.Is(err, bbolt.ErrIncompatibleValue) {
		err = msgs.Delete(key) // a plain value, from an earlier version
	}
	if err != nil {
		return err
	}
	return tx.Bucket(bucketState).Delete(key)
}

// record returns a message's stored record, nil if there is none.
func record(msgs *bbolt.Bucket, key []byte) []byte {
	if b := msgs.Bucket(key); b != nil {
		return b.Get(recordKey)
	}
	return msgs.Get(key)
}

func getMessage(tx *bbolt.Tx, key []byte) (Message, error) {
	v := record(tx.Bucket(bucketMessages), key)
	if v == nil {
		return Message{}, fmt.Errorf("message %d has a lock state but no body", seqOf(key))
	}
	m, err := decodeMessage(v)
	if err != nil {
		return m, fmt.Errorf("message %d: %w", seqOf(key), err)
	}
	return m, nil
}

// moveToDeadLetter files an active message in the dead-letter sub-queue
// with the properties Service Bus sets on it, under its own sequence number,
// in the caller's transaction: never in both queues, never in neither.
func moveToDeadLetter(tx *bbolt.Tx, key []byte, st lockState, reason, description string, now time.Time) error {
	m, err := getMessage(tx, key)
	if err != nil {
		return err
	}
	v, err := json.Marshal(PeekedMessage{
		Message:                    m,
		SequenceNumber:             int64(seqOf(key)),
		DeliveryCount:              int(st.deliveries),
		DeadLetterReason:           truncate(reason, maxReasonBytes),
		DeadLetterErrorDescription: truncate(description, maxReasonBytes),
		DeadLetteredAt:             now.UTC(),
	})
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketDeadLetter).Put(key, v); err != nil {
		return err
	}
	return removeActive(tx, key)
}

// seen reports whether id was accepted within the duplicate detection
// window, and otherwise remembers it from now. The window runs from the
// first acceptance: a duplicate does not extend it. Each call also forgets
// up to pruneBatch IDs older than the window, so the history stays about
// one window's worth of sends.
func (q *Queue) seen(tx *bbolt.Tx, id string, now time.Time) (bool, error) {
	cutoff := now.Add(-q.opts.DuplicateDetectionWindow).UnixNano()
	ids, ages := tx.Bucket(bucketDedup), tx.Bucket(bucketDedupAge)
	if err := pruneDedup(ids, ages, cutoff); err != nil {
		return false, err
	}
	key := []byte(id)
	if v := ids.Get(key); len(v) == 8 {
		if int64(binary.BigEndian.Uint64(v)) > cutoff {
			return true, incr(tx, counterDuplicates)
		}
		if err := ages.Delete(append(bytes.Clone(v), key...)); err != nil {
			return false, err
		}
	}
	ts := binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))
	if err := ids.Put(key, ts); err != nil {
		return false, err
	}
	return false, ages.Put(append(ts, key...), []byte{})
}

const pruneBatch = 256

func pruneDedup(ids, ages *bbolt.Bucket, cutoff int64) error {
	var stale [][]byte
	c := ages.Cursor()
	for k, _ := c.First(); k != nil && len(stale) < pruneBatch; k, _ = c.Next() {
		if len(k) < 8 || int64(binary.BigEndian.Uint64(k)) > cutoff {
			break
		}
		stale = append(stale, cloneKey(k))
	}
	for _, k := range stale {
		id := k[8:]
		if v := ids.Get(id); v != nil && bytes.Equal(v, k[:8]) {
			if err := ids.Delete(id); err != nil {
				return err
			}
		}
		if err := ages.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func incr(tx *bbolt.Tx, name []byte) error {
	b := tx.Bucket(bucketCounters)
	return b.Put(name, binary.BigEndian.AppendUint64(nil, counter(b, name)+1))
}

func counter(b *bbolt.Bucket, name []byte) uint64 {
	if v := b.Get(name); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}
