package queue

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelfleet/modelfleet"
	"go.etcd.io/bbolt"
)

// Options configures an embedded Queue. The zero value mirrors a Service
// Bus queue created with its defaults, except for LockDuration.
type Options struct {
	// Name is the queue's name in the HTTP API (/api/queues/{name}/...).
	// Default: the file name without its extension ("signals" for
	// ".../signals.db").
	Name string
	// LockDuration is how long a received message stays locked before it is
	// delivered again. Default 30 s, half of Service Bus's default (60 s):
	// the embedded stack redelivers a crashed consumer's messages sooner, and
	// Consume renews the lock of a slow handler at half the lock anyway.
	LockDuration time.Duration
	// MaxDeliveryCount is how many deliveries a message gets before it is
	// dead-lettered with reason MaxDeliveryCountExceeded. Default 10, as in
	// Service Bus.
	MaxDeliveryCount int
	// DuplicateDetectionWindow is how long a MessageId is remembered: a
	// message with an ID first accepted less than this ago is accepted and
	// dropped. Default 10 min, Service Bus's default history window.
	DuplicateDetectionWindow time.Duration
	// MaxMessageBytes bounds a message (ID, body, content type and
	// properties). Default 256 KiB, Service Bus Standard's limit.
	MaxMessageBytes int
	// Now is the clock of locks, enqueue times and duplicate detection.
	// Default time.Now; tests inject their own.
	Now func() time.Time
	// Logger records internal errors of the HTTP API. Default slog.Default().
	Logger *slog.Logger
}

func (o *Options) setDefaults(path string) {
	if o.Name == "" {
		base := filepath.Base(path)
		o.Name = strings.TrimSuffix(base, filepath.Ext(base))
	}
	if o.LockDuration <= 0 {
		o.LockDuration = 30 * time.Second
	}
	if o.MaxDeliveryCount <= 0 {
		o.MaxDeliveryCount = 10
	}
	if o.DuplicateDetectionWindow <= 0 {
		o.DuplicateDetectionWindow = 10 * time.Minute
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Queue is a durable queue with Service Bus semantics in one bbolt file. It
// is safe for concurrent use, also by several receivers.
type Queue struct {
	opts Options
	db   *bbolt.DB

	wake // receivers wait here (wake.go)

	// Group commit (commit.go): writes waiting for the transaction in
	// progress, and whether one is.
	wmu        sync.Mutex
	pending    []*writeOp
	committing bool
	commits    atomic.Int64 // transactions committed or tried, for tests

	closeOnce sync.Once
	closeErr  error
}

// Compile-time checks: the embedded queue is a drop-in for Service Bus.
var (
	_ Sender   = (*Queue)(nil)
	_ Receiver = (*Queue)(nil)
)

// Open opens (creating if needed) the queue stored in the bbolt file at
// path. Messages sent and not completed before a crash or Close are
// delivered again after Open, once their lock (persisted) has expired.
func Open(path string, opts Options) (*Queue, error) {
	opts.setDefaults(path)
	if err := modelfleet.ValidateName("queue name", opts.Name); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("queue: create directory of %s: %w", path, err)
	}
	// The timeout turns a second Open of the same file (bbolt holds a file
	// lock) into an error instead of a hang. Every commit still syncs the
	// data it wrote; what is not written is bbolt's list of free pages
	// (NoFreelistSync, as etcd runs bbolt), which Open rebuilds by walking
	// the file instead. A drained queue of large messages leaves tens of
	// thousands of free pages, and writing their list out on every commit
	// had each commit write most of a megabyte. The map freelist keeps
	// freeing and allocating those runs of pages cheap.
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:        2 * time.Second,
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("queue: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("queue: create buckets in %s: %w", path, err)
	}
	return &Queue{opts: opts, db: db, wake: newWake()}, nil
}

func (q *Queue) options() *Options { return &q.opts }

// Name is the queue's name in the HTTP API.
func (q *Queue) Name() string { return q.opts.Name }

// Close releases the file. A blocked Receive returns ErrClosed.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		close(q.closed)
		q.closeErr = q.db.Close()
	})
	return q.closeErr
}

// Send stores m durably (the bbolt transaction has committed when it
// returns). As in Service Bus with duplicate detection on, a message whose
// ID was accepted within DuplicateDetectionWindow is accepted and dropped.
func (q *Queue) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if q.isClosed() {
		return ErrClosed
	}
	if err := checkMessage(m, q.opts.MaxMessageBytes); err != nil {
		return err
	}
	now := q.opts.Now()
	m.EnqueuedAt = now.UTC()
	dup := false
	err := q.update(func(tx *bbolt.Tx) error {
		var err error
		if dup, err = q.seen(tx, m.ID, now); err != nil || dup {
			return err
		}
		if err := appendActive(tx, m); err != nil {
			return err
		}
		return incr(tx, counterSent)
	})
	if err != nil {
		return fmt.Errorf("queue: send %q: %w", m.ID, err)
	}
	if !dup {
		q.broadcast()
	}
	return nil
}

// Receive locks and returns up to max messages, oldest first, blocking
// until there is at least one or ctx is done (PeekLock). A message whose
// next delivery would exceed MaxDeliveryCount is dead-lettered instead.
// Waiting costs nothing: Receive sleeps until a Send, an Abandon or the
// earliest lock expiry.
func (q *Queue) Receive(ctx context.Context, max int) ([]Delivery, error) {
	return q.receive(ctx, max, func(_ context.Context, max int) ([]Delivery, time.Time, error) { return q.lockBatch(max) }, 0, q.opts.Now)
}

// lockBatch locks up to max available messages in one transaction. When it
// finds none it also reports the earliest expiry among the held locks (zero
// if none), which is when Receive looks again.
func (q *Queue) lockBatch(max int) (ds []Delivery, next time.Time, err error) {
	now := q.opts.Now()
	err = q.update(func(tx *bbolt.Tx) error {
		ds, next = nil, time.Time{} // a group that failed runs this again
		type pick struct {
			key []byte
			st  lockState
		}
		var take, dead []pick
		var earliest int64
		states := tx.Bucket(bucketState)
		c := states.Cursor()
		// bbolt cursors must not see writes, so pick first and write after.
		for k, v := c.First(); k != nil && len(take) < max; k, v = c.Next() {
			st, err := decodeState(v)
			if err != nil {
				return fmt.Errorf("message %d: %w", seqOf(k), err)
			}
			switch {
			case st.locked(now):
				if earliest == 0 || st.lockedUntil < earliest {
					earliest = st.lockedUntil
				}
			case int(st.deliveries) >= q.opts.MaxDeliveryCount:
				dead = append(dead, pick{cloneKey(k), st})
			default:
				take = append(take, pick{cloneKey(k), st})
			}
		}
		for _, p := range dead {
			if err := moveToDeadLetter(tx, p.key, p.st, ReasonMaxDeliveryCountExceeded, maxDeliveriesDescription(p.st), now); err != nil {
				return err
			}
		}
		until := now.Add(q.opts.LockDuration).UTC()
		for _, p := range take {
			st := lockState{deliveries: p.st.deliveries + 1, lockedUntil: until.UnixNano(), token: newToken()}
			if err := states.Put(p.key, st.encode()); err != nil {
				return err
			}
			ds = append(ds, Delivery{
				SequenceNumber: int64(seqOf(p.key)),
				DeliveryCount:  int(st.deliveries),
				LockToken:      st.tokenString(),
				LockedUntil:    until,
			})
		}
		if earliest != 0 {
			next = time.Unix(0, earliest)
		}
		return nil
	})
	if err != nil || len(ds) == 0 {
		return nil, next, err
	}
	return q.readLocked(ds), next, nil
}

// readLocked fills in the messages of deliveries just locked. It reads
// them after the lock has committed, in a read transaction, so that copying
// bodies of up to 256 KiB out of the file does not hold up every other
// write; the messages cannot change in between, as only the holder of a
// lock settles a message. One that cannot be read is logged and left out
// (it comes back when its lock expires) rather than failing the messages
// locked with it.
func (q *Queue) readLocked(ds []Delivery) []Delivery {
	out := ds[:0]
	err := q.db.View(func(tx *bbolt.Tx) error {
		for _, d := range ds {
			m, err := getMessage(tx, seqKey(uint64(d.SequenceNumber)))
			if err != nil {
				q.opts.Logger.Error("queue: receive: message unreadable; left locked", "queue", q.opts.Name, "sequence", d.SequenceNumber, "err", err)
				continue
			}
			d.Message = m
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		q.opts.Logger.Error("queue: receive: read locked messages", "queue", q.opts.Name, "err", err)
		return nil
	}
	return out
}

// maxDeliveriesDescription is Service Bus's description for the reason.
func maxDeliveriesDescription(st lockState) string {
	return fmt.Sprintf("message could not be consumed after %d delivery attempts", st.deliveries)
}
