package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/modelfleet/modelfleet"
)

// PostgresQueue is a queue with the embedded Queue's Service Bus semantics
// in PostgreSQL (the schema is internal/pgdb's), shared by every gateway
// replica: a message is locked for one consumer across all of them (FOR
// UPDATE SKIP LOCKED), its lock token and expiry, delivery count,
// dead-letter sub-queue and MessageID history are rows, and a send wakes
// every replica's waiting receivers (LISTEN/NOTIFY, with a fallback poll).
type PostgresQueue struct {
	opts  Options
	pool  *pgxpool.Pool
	sends atomic.Int64

	wake // receivers wait here (wake.go)

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

var (
	_ Sender   = (*PostgresQueue)(nil)
	_ Receiver = (*PostgresQueue)(nil)
	_ Store    = (*PostgresQueue)(nil)
	_ Store    = (*Queue)(nil)
)

// queueChannel announces sends (and abandons) of a queue: the payload is
// the queue's name.
const queueChannel = "modelfleet_queue"

// PostgresPoll is how often a waiting Receive looks again in case a
// notification was lost (default 2 s).
var PostgresPoll = 2 * time.Second

// OpenPostgres opens the queue named opts.Name (required) in the database
// pool reaches (already migrated: pgdb.Open). The pool stays the caller's.
func OpenPostgres(pool *pgxpool.Pool, opts Options) (*PostgresQueue, error) {
	if opts.Name == "" {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "queue: a queue on PostgreSQL needs a name")
	}
	opts.setDefaults(opts.Name)
	if err := modelfleet.ValidateName("queue name", opts.Name); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	q := &PostgresQueue{opts: opts, pool: pool, wake: newWake(), cancel: cancel, done: make(chan struct{})}
	if _, err := pool.Exec(ctx, `INSERT INTO queue_counters (queue) VALUES ($1) ON CONFLICT DO NOTHING`, opts.Name); err != nil {
		cancel()
		return nil, fmt.Errorf("queue: open %q on PostgreSQL: %w", opts.Name, err)
	}
	go q.listen(ctx)
	return q, nil
}

// Name is the queue's name.
func (q *PostgresQueue) Name() string { return q.opts.Name }

func (q *PostgresQueue) options() *Options { return &q.opts }

// Close stops receiving; the pool stays open.
func (q *PostgresQueue) Close() error {
	q.closeOnce.Do(func() {
		close(q.closed)
		q.cancel()
		<-q.done
	})
	return nil
}

// listen wakes this replica's receivers when any replica sends.
func (q *PostgresQueue) listen(ctx context.Context) {
	defer close(q.done)
	for ctx.Err() == nil {
		func() {
			c, err := q.pool.Acquire(ctx)
			if err != nil {
				return
			}
			defer func() {
				c.Conn().Close(context.Background()) // it holds LISTEN state
				c.Release()
			}()
			if _, err := c.Exec(ctx, "LISTEN "+queueChannel); err != nil {
				return
			}
			q.broadcast()
			for {
				n, err := c.Conn().WaitForNotification(ctx)
				if err != nil {
					return
				}
				if n.Payload == q.opts.Name {
					q.broadcast()
				}
			}
		}()
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Send stores m durably (committed when it returns); a message whose ID
// was accepted within DuplicateDetectionWindow is accepted and dropped.
func (q *PostgresQueue) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if q.isClosed() {
		return ErrClosed
	}
	if err := checkMessage(m, q.opts.MaxMessageBytes); err != nil {
		return err
	}
	now := q.opts.Now().UTC()
	cutoff := now.Add(-q.opts.DuplicateDetectionWindow)
	err := pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		// Concurrent sends of one ID meet on its row: the second waits
		// for the first to commit, then finds it.
		var fresh bool
		err := tx.QueryRow(ctx, `
			INSERT INTO queue_dedup (queue, id, first_at) VALUES ($1, $2, $3)
			ON CONFLICT (queue, id) DO UPDATE SET first_at = EXCLUDED.first_at WHERE queue_dedup.first_at <= $4
			RETURNING true`, q.opts.Name, m.ID, now, cutoff).Scan(&fresh)
		if errors.Is(err, pgx.ErrNoRows) {
			_, err = tx.Exec(ctx, `UPDATE queue_counters SET duplicates = duplicates + 1 WHERE queue = $1`, q.opts.Name)
			return err
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO queue_messages (queue, id, body, content_type, properties, enqueued_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			q.opts.Name, m.ID, nonNil(m.Body), m.ContentType, m.Properties, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE queue_counters SET sent = sent + 1 WHERE queue = $1`, q.opts.Name); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, queueChannel, q.opts.Name)
		return err
	})
	if err != nil {
		return fmt.Errorf("queue: send %q: %w", m.ID, err)
	}
	q.broadcast()
	if q.sends.Add(1)%256 == 0 {
		// Forget IDs older than the window, now and then.
		_, _ = q.pool.Exec(ctx, `DELETE FROM queue_dedup WHERE queue = $1 AND first_at <= $2`, q.opts.Name, cutoff)
	}
	return nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Receive locks and returns up to max messages, oldest first, blocking
// until there is at least one or ctx is done. A message whose next
// delivery would exceed MaxDeliveryCount is dead-lettered instead.
func (q *PostgresQueue) Receive(ctx context.Context, max int) ([]Delivery, error) {
	return q.receive(ctx, max, q.lockBatch, PostgresPoll, q.opts.Now)
}

const deliveryColumns = `seq, id, body, content_type, properties, enqueued_at, deliveries`

// lockBatch dead-letters the available messages that used up their
// deliveries and locks up to max others, skipping rows another consumer
// holds; with none, it reports the earliest lock expiry.
func (q *PostgresQueue) lockBatch(ctx context.Context, max int) (ds []Delivery, next time.Time, err error) {
	now := q.opts.Now().UTC()
	until := now.Add(q.opts.LockDuration)
	err = pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		ds, next = nil, time.Time{}
		if _, err := tx.Exec(ctx, moveDeadSQL(`SELECT seq FROM queue_messages
				WHERE queue = $1 AND (locked_until IS NULL OR locked_until <= $2) AND deliveries >= $3
				ORDER BY seq LIMIT 100 FOR UPDATE SKIP LOCKED`, `$4`, `$5`, `$2`),
			q.opts.Name, now, q.opts.MaxDeliveryCount, ReasonMaxDeliveryCountExceeded, "message could not be consumed after the maximum delivery attempts"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			WITH picked AS (
				SELECT seq FROM queue_messages
				WHERE queue = $1 AND (locked_until IS NULL OR locked_until <= $2) AND deliveries < $3
				ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED)
			UPDATE queue_messages m SET deliveries = m.deliveries + 1, locked_until = $5, token = md5(random()::text || clock_timestamp()::text || m.seq::text)
			FROM picked WHERE m.queue = $1 AND m.seq = picked.seq
			RETURNING m.seq, m.id, m.body, m.content_type, m.properties, m.enqueued_at, m.deliveries, m.token`,
			q.opts.Name, now, q.opts.MaxDeliveryCount, max, until)
		if err != nil {
			return err
		}
		var d Delivery
		_, err = pgx.ForEachRow(rows, []any{&d.SequenceNumber, &d.ID, &d.Body, &d.ContentType, &d.Properties, &d.EnqueuedAt, &d.DeliveryCount, &d.LockToken}, func() error {
			d.LockedUntil, d.EnqueuedAt = until, d.EnqueuedAt.UTC()
			ds = append(ds, d)
			d = Delivery{}
			return nil
		})
		if err != nil || len(ds) > 0 {
			return err
		}
		var earliest *time.Time
		if err := tx.QueryRow(ctx, `SELECT min(locked_until) FROM queue_messages WHERE queue = $1 AND locked_until > $2`, q.opts.Name, now).Scan(&earliest); err != nil {
			return err
		}
		if earliest != nil {
			next = *earliest
		}
		return nil
	})
	// RETURNING does not keep the picked order.
	sortDeliveries(ds)
	return ds, next, err
}

func sortDeliveries(ds []Delivery) {
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && ds[j].SequenceNumber < ds[j-1].SequenceNumber; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
}

// moveDeadSQL moves the messages whose seq the subquery selects to the
// dead-letter sub-queue, in one statement: never in both, never in neither.
func moveDeadSQL(seqs, reason, description, now string) string {
	return `WITH dead AS (
		DELETE FROM queue_messages WHERE queue = $1 AND seq IN (` + seqs + `)
		RETURNING queue, seq, id, body, content_type, properties, enqueued_at, deliveries)
	INSERT INTO queue_deadletter (queue, seq, id, body, content_type, properties, enqueued_at, deliveries, reason, description, dead_at)
	SELECT queue, seq, id, body, content_type, properties, enqueued_at, deliveries, ` + reason + `, ` + description + `, ` + now + ` FROM dead`
}

// settle runs stmt (with $1 queue, $2 seq, $3 token, $4 now and args from
// $5) if d's lock is still held; otherwise ECONFLICT, as Service Bus fails
// with MessageLockLost.
func (q *PostgresQueue) settle(ctx context.Context, op string, d Delivery, stmt string, args ...any) (pgconn.CommandTag, error) {
	if q.isClosed() {
		return pgconn.CommandTag{}, ErrClosed
	}
	if d.SequenceNumber <= 0 || d.LockToken == "" {
		return pgconn.CommandTag{}, errLockLost(d)
	}
	now := q.opts.Now().UTC()
	tag, err := q.pool.Exec(ctx, stmt, append([]any{q.opts.Name, d.SequenceNumber, d.LockToken, now}, args...)...)
	if err != nil {
		return tag, fmt.Errorf("queue: %s message %d: %w", op, d.SequenceNumber, err)
	}
	if tag.RowsAffected() == 0 {
		return tag, errLockLost(d)
	}
	return tag, nil
}

const held = `queue = $1 AND seq = $2 AND token = $3 AND locked_until > $4`

// Complete removes a delivered message for good.
func (q *PostgresQueue) Complete(ctx context.Context, d Delivery) error {
	_, err := q.settle(ctx, "complete", d, `
		WITH done AS (DELETE FROM queue_messages WHERE `+held+` RETURNING queue)
		UPDATE queue_counters c SET completed = c.completed + 1 FROM done WHERE c.queue = done.queue`)
	return err
}

// Abandon releases the lock so the message is delivered again, with
// DeliveryCount+1; one that has used up its deliveries is dead-lettered.
func (q *PostgresQueue) Abandon(ctx context.Context, d Delivery) error {
	tag, err := q.settle(ctx, "abandon", d, moveDeadSQL(`SELECT seq FROM queue_messages WHERE `+held+` AND deliveries >= $5`, `$6`, `$7`, `$4`),
		q.opts.MaxDeliveryCount, ReasonMaxDeliveryCountExceeded, fmt.Sprintf("message could not be consumed after %d delivery attempts", d.DeliveryCount))
	if err == nil && tag.RowsAffected() > 0 {
		return nil
	}
	if err != nil && modelfleet.ErrorCode(err) != modelfleet.ECONFLICT {
		return err
	}
	_, err = q.settle(ctx, "abandon", d, `UPDATE queue_messages SET locked_until = NULL, token = NULL WHERE `+held)
	if err == nil {
		q.broadcast()
		_, _ = q.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, queueChannel, q.opts.Name)
	}
	return err
}

// DeadLetter moves a delivered message to the dead-letter sub-queue.
func (q *PostgresQueue) DeadLetter(ctx context.Context, d Delivery, reason, description string) error {
	_, err := q.settle(ctx, "dead-letter", d, moveDeadSQL(`SELECT seq FROM queue_messages WHERE `+held, `$5`, `$6`, `$4`),
		truncate(reason, maxReasonBytes), truncate(description, maxReasonBytes))
	return err
}

// RenewLock extends the lock by LockDuration from now.
func (q *PostgresQueue) RenewLock(ctx context.Context, d *Delivery) error {
	until := q.opts.Now().UTC().Add(q.opts.LockDuration)
	_, err := q.settle(ctx, "renew lock", *d, `UPDATE queue_messages SET locked_until = $5 WHERE `+held, until)
	if err == nil {
		d.LockedUntil = until
	}
	return err
}

// adminTimeout bounds the admin calls, which take no context.
const adminTimeout = 30 * time.Second

// Stats returns the queue's counts.
func (q *PostgresQueue) Stats() (Stats, error) {
	if q.isClosed() {
		return Stats{}, ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	var s Stats
	err := q.pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM queue_messages WHERE queue = $1),
		       (SELECT count(*) FROM queue_messages WHERE queue = $1 AND locked_until > $2),
		       (SELECT count(*) FROM queue_deadletter WHERE queue = $1),
		       sent, completed, duplicates
		FROM queue_counters WHERE queue = $1`, q.opts.Name, q.opts.Now().UTC()).
		Scan(&s.Active, &s.Locked, &s.DeadLettered, &s.Sent, &s.Completed, &s.Duplicates)
	if err != nil {
		return Stats{}, fmt.Errorf("queue: stats: %w", err)
	}
	return s, nil
}

// Peek returns up to max messages (at most MaxPeek) with sequence number
// from or later, without locking them.
func (q *PostgresQueue) Peek(from int64, max int, deadLetter bool) ([]PeekedMessage, error) {
	if max <= 0 || from < 0 {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "peek: want from >= 0 and max > 0, got from=%d max=%d", from, max)
	}
	if q.isClosed() {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	max = min(max, MaxPeek)
	now := q.opts.Now().UTC()
	out := []PeekedMessage{}
	var p PeekedMessage
	var until *time.Time
	var rows pgx.Rows
	var err error
	dest := []any{&p.SequenceNumber, &p.ID, &p.Body, &p.ContentType, &p.Properties, &p.EnqueuedAt, &p.DeliveryCount}
	if deadLetter {
		rows, err = q.pool.Query(ctx, `SELECT `+deliveryColumns+`, reason, description, dead_at FROM queue_deadletter
			WHERE queue = $1 AND seq >= $2 ORDER BY seq LIMIT $3`, q.opts.Name, from, max)
		dest = append(dest, &p.DeadLetterReason, &p.DeadLetterErrorDescription, &p.DeadLetteredAt)
	} else {
		rows, err = q.pool.Query(ctx, `SELECT `+deliveryColumns+`, locked_until FROM queue_messages
			WHERE queue = $1 AND seq >= $2 ORDER BY seq LIMIT $3`, q.opts.Name, from, max)
		dest = append(dest, &until)
	}
	if err == nil {
		_, err = pgx.ForEachRow(rows, dest, func() error {
			p.EnqueuedAt = p.EnqueuedAt.UTC()
			if !p.DeadLetteredAt.IsZero() {
				p.DeadLetteredAt = p.DeadLetteredAt.UTC()
			}
			if until != nil && until.After(now) {
				p.LockedUntil = until.UTC()
			}
			out = append(out, p)
			p, until = PeekedMessage{}, nil
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("queue: peek: %w", err)
	}
	return out, nil
}

// Redrive moves up to max dead-lettered messages back to the queue, oldest
// first, as fresh messages (new sequence numbers, no deliveries).
func (q *PostgresQueue) Redrive(ctx context.Context, max int) (int, error) {
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
		tag, err := q.pool.Exec(ctx, `
			WITH moved AS (
				DELETE FROM queue_deadletter WHERE queue = $1 AND seq IN (
					SELECT seq FROM queue_deadletter WHERE queue = $1 ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED)
				RETURNING seq, id, body, content_type, properties)
			INSERT INTO queue_messages (queue, id, body, content_type, properties, enqueued_at)
			SELECT $1, id, body, content_type, properties, $3 FROM moved ORDER BY seq`, q.opts.Name, want, q.opts.Now().UTC())
		if err != nil {
			return moved, fmt.Errorf("queue: redrive: %w", err)
		}
		n := int(tag.RowsAffected())
		moved += n
		if n > 0 {
			q.broadcast()
			_, _ = q.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, queueChannel, q.opts.Name)
		}
		if n < want {
			break
		}
	}
	return moved, nil
}

// Ping reports whether the database answers (readiness).
func (q *PostgresQueue) Ping(ctx context.Context) error { return q.pool.Ping(ctx) }
