package signals

import (
	"bytes"
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/queue"
)

// Sender defaults.
const (
	DefaultMaxBatch      = 64
	DefaultMaxBatchBytes = 192 << 10 // under Service Bus Standard's 256 KiB per message
	DefaultSendTimeout   = 30 * time.Second
)

// Sender drains a Buffer into a queue, oldest first. A message leaves the
// buffer only after the queue accepted it, so a failed or interrupted send
// is retried; a retry carries the same message ID (or batch ID), which the
// queue's duplicate detection, and after it the monitor, drop. When
// several messages are waiting (a site back online), up to MaxBatch go in
// one queue message as a Batch: one queue operation instead of MaxBatch.
type Sender struct {
	Buffer *Buffer
	Queue  queue.Sender
	// MaxBatch bounds the messages per queue message; 1 never batches.
	// Default DefaultMaxBatch.
	MaxBatch int
	// MaxBatchBytes bounds a batch's body. Default DefaultMaxBatchBytes.
	MaxBatchBytes int
	// MinBackoff and MaxBackoff bound the wait between failed sends while
	// the cloud is unreachable. Defaults 1 s and 1 min.
	MinBackoff, MaxBackoff time.Duration
	SendTimeout            time.Duration // default DefaultSendTimeout
	Logger                 *slog.Logger

	sent, batches, failures, rejected atomic.Int64
	connected                         atomic.Bool
}

// SenderStats are a Sender's counts since it started.
type SenderStats struct {
	Sent      int64 // messages the queue accepted
	Batches   int64 // queue messages sent (a single message counts as one)
	Failures  int64 // failed send attempts, retried
	Rejected  int64 // messages the queue refused for good (invalid, too large), dropped
	Connected bool  // whether the last attempt succeeded
}

// Stats returns the counts.
func (s *Sender) Stats() SenderStats {
	return SenderStats{Sent: s.sent.Load(), Batches: s.batches.Load(), Failures: s.failures.Load(), Rejected: s.rejected.Load(), Connected: s.connected.Load()}
}

// Run sends until ctx is done.
func (s *Sender) Run(ctx context.Context) error {
	s.setDefaults()
	backoff := s.MinBackoff
	single := false // after a batch was refused, send one at a time
	for {
		max := s.MaxBatch
		if single {
			max = 1
		}
		items, err := s.Buffer.Peek(max, s.MaxBatchBytes)
		if err != nil {
			s.Logger.Error("signal buffer unreadable", "err", err)
			if !wait(ctx, backoff, nil) {
				return nil
			}
			continue
		}
		if len(items) == 0 {
			single = false
			if !wait(ctx, 0, s.Buffer.Notify()) {
				return nil
			}
			continue
		}
		err = s.send(ctx, items)
		switch {
		case err == nil:
			s.connected.Store(true)
			backoff = s.MinBackoff
			single = false
		case ctx.Err() != nil:
			return nil
		case permanent(err) && len(items) > 1:
			s.Logger.Warn("signal batch refused; sending its messages one by one", "err", err)
			single = true
		case permanent(err):
			// No retry can make the queue take it: keep it from blocking
			// every later message.
			s.Logger.Error("signal message refused by the queue; dropped", "message_id", items[0].ID, "err", err)
			s.rejected.Add(1)
			if err := s.Buffer.Remove(items[0].Seq); err != nil {
				s.Logger.Error("signal buffer remove failed", "err", err)
			}
		default:
			s.failures.Add(1)
			if s.connected.Swap(false) || s.failures.Load() == 1 {
				s.Logger.Warn("signal queue unreachable; buffering on disk", "err", err, "retry_in", backoff)
			}
			if !wait(ctx, backoff, nil) {
				return nil
			}
			backoff = min(2*backoff, s.MaxBackoff)
		}
	}
}

func (s *Sender) setDefaults() {
	if s.MaxBatch <= 0 {
		s.MaxBatch = DefaultMaxBatch
	}
	if s.MaxBatchBytes <= 0 {
		s.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if s.MinBackoff <= 0 {
		s.MinBackoff = time.Second
	}
	if s.MaxBackoff <= 0 {
		s.MaxBackoff = time.Minute
	}
	if s.SendTimeout <= 0 {
		s.SendTimeout = DefaultSendTimeout
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
}

// send sends items as one queue message and removes them once accepted.
func (s *Sender) send(ctx context.Context, items []Buffered) error {
	m := queue.Message{ID: items[0].ID, Body: items[0].Body, ContentType: ContentType}
	if len(items) > 1 {
		m.ID, m.Body = batchBody(items)
	}
	sctx, cancel := context.WithTimeout(ctx, s.SendTimeout)
	defer cancel()
	if err := s.Queue.Send(sctx, m); err != nil {
		return err
	}
	seqs := make([]uint64, len(items))
	for i, it := range items {
		seqs[i] = it.Seq
	}
	s.sent.Add(int64(len(items)))
	s.batches.Add(1)
	// Sent but not removed (a crash, a disk error) means sent again later:
	// a duplicate the queue and the monitor drop, never a loss.
	return s.Buffer.Remove(seqs...)
}

// batchBody wraps buffered bodies, each a complete message, in a Batch
// without decoding them again.
func batchBody(items []Buffered) (string, []byte) {
	ids := make([]string, len(items))
	var b bytes.Buffer
	b.WriteString(`{"schemaVersion":"` + BatchSchemaVersion + `","messages":[`)
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(it.Body)
		ids[i] = it.ID
	}
	b.WriteString("]}")
	return BatchID(ids), b.Bytes()
}

// permanent reports whether the queue will never accept the message.
func permanent(err error) bool {
	switch modelfleet.ErrorCode(err) {
	case modelfleet.EINVALID, modelfleet.ETOOLARGE:
		return true
	}
	return false
}

// wait sleeps d (forever if 0) or until ch fires or ctx is done; it reports
// false when ctx is done.
func wait(ctx context.Context, d time.Duration, ch <-chan struct{}) bool {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
		return false
	case <-timer:
	case <-ch:
	}
	return true
}
