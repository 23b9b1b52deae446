// Package queue carries messages from edge sites to the control plane with
// Azure Service Bus queue semantics, behind one thin interface with two
// implementations:
//
//   - Queue (embedded.go): a durable queue in one bbolt file, for the
//     embedded default stack. It mirrors the Service Bus behaviour modelfleet
//     relies on: PeekLock receive, lock tokens and lock expiry, delivery
//     count, MaxDeliveryCount then dead-letter, duplicate detection by
//     MessageId within a window, and a dead-letter sub-queue.
//   - ServiceBusSender and ServiceBusReceiver (servicebus.go): thin adapters
//     over azservicebus for Azure mode.
//
// Consume (consumer.go) is the loop every consumer shares, so that "complete
// only after the effect is durable, dead-letter what can never succeed,
// abandon the rest" is written once.
//
// Errors carry modelfleet error codes: EINVALID for a message that can never
// be sent, ETOOLARGE for an oversize one, ECONFLICT for a settlement whose
// lock is lost (Service Bus's MessageLockLost).
package queue

import (
	"context"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/modelfleet/modelfleet"
)

// Message is one queue message. ID is the sender's MessageID, used for
// duplicate detection. EnqueuedAt is set by the queue; a sender's value is
// ignored, as Service Bus sets EnqueuedTime itself.
type Message struct {
	ID          string            `json:"id"`
	Body        []byte            `json:"body"`
	ContentType string            `json:"contentType,omitempty"`
	Properties  map[string]string `json:"properties,omitempty"`
	EnqueuedAt  time.Time         `json:"enqueuedAt,omitzero"`
}

// Delivery is a received, locked message. SequenceNumber is the queue's
// number for it (Service Bus's SequenceNumber); DeliveryCount is 1 on the
// first delivery and counts every delivery since, as Service Bus counts it.
type Delivery struct {
	Message
	SequenceNumber int64
	DeliveryCount  int
	LockToken      string
	LockedUntil    time.Time
}

// Sender sends messages. A Send that returned nil is durable; one that
// failed may be retried with the same Message.ID, which duplicate detection
// makes safe.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Receiver receives messages in PeekLock mode and settles them. Settling or
// renewing with a lock that expired or was superseded fails with ECONFLICT.
type Receiver interface {
	// Receive blocks until at least one message is available or ctx is done.
	Receive(ctx context.Context, max int) ([]Delivery, error)
	// Complete removes the message: its processing is done.
	Complete(ctx context.Context, d Delivery) error
	// Abandon releases the lock for a transient failure: the message is
	// delivered again with DeliveryCount+1.
	Abandon(ctx context.Context, d Delivery) error
	// DeadLetter moves the message to the dead-letter sub-queue.
	DeadLetter(ctx context.Context, d Delivery, reason, description string) error
	// RenewLock extends the lock and updates d.LockedUntil.
	RenewLock(ctx context.Context, d *Delivery) error
}

// Service Bus limits mirrored by both implementations.
const (
	// DefaultMaxMessageBytes is Service Bus Standard's message size limit
	// (256 KiB, body and properties together).
	DefaultMaxMessageBytes = 256 << 10
	// maxIDLength is Service Bus's limit on MessageId.
	maxIDLength = 128
	// ReasonMaxDeliveryCountExceeded is the DeadLetterReason Service Bus sets
	// when a message was delivered MaxDeliveryCount times without completing.
	ReasonMaxDeliveryCountExceeded = "MaxDeliveryCountExceeded"
	// maxReasonBytes bounds dead-letter reason and description: Service Bus
	// keeps them in message headers, which are limited too.
	maxReasonBytes = 4096
)

// ErrClosed is returned by operations on a closed queue or receiver.
var ErrClosed = errors.New("queue: closed")

// errLockLost is Service Bus's MessageLockLost: the lock expired, or the
// message was settled or locked again by another receiver.
func errLockLost(d Delivery) error {
	return modelfleet.Errorf(modelfleet.ECONFLICT, "lock lost on message %q (sequence %d): the lock expired or the message was settled", d.ID, d.SequenceNumber)
}

// checkMessage validates m for sending: a MessageId (required here because
// duplicate detection depends on it), valid UTF-8 in the string fields (AMQP
// strings are UTF-8), and the size limit counted over body and properties.
func checkMessage(m Message, maxBytes int) error {
	if m.ID == "" {
		return modelfleet.Errorf(modelfleet.EINVALID, "message id is required (it is the key of duplicate detection)")
	}
	if len(m.ID) > maxIDLength {
		return modelfleet.Errorf(modelfleet.EINVALID, "message id is %d bytes long: at most %d are allowed", len(m.ID), maxIDLength)
	}
	if !utf8.ValidString(m.ID) || !utf8.ValidString(m.ContentType) {
		return modelfleet.Errorf(modelfleet.EINVALID, "message id and content type must be valid UTF-8")
	}
	size := len(m.ID) + len(m.Body) + len(m.ContentType)
	for k, v := range m.Properties {
		if k == "" || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return modelfleet.Errorf(modelfleet.EINVALID, "message %q: property names must be non-empty and properties valid UTF-8", m.ID)
		}
		size += len(k) + len(v)
	}
	if size > maxBytes {
		return modelfleet.Errorf(modelfleet.ETOOLARGE, "message %q is %d bytes: at most %d are allowed", m.ID, size, maxBytes)
	}
	return nil
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Store is a queue the gateway keeps and serves over HTTP (NewHandler):
// the embedded Queue (bbolt) or PostgresQueue, shared by replicas. Both
// pass the conformance suite in queue/queuetest.
type Store interface {
	Sender
	Receiver
	Name() string
	Stats() (Stats, error)
	Peek(from int64, max int, deadLetter bool) ([]PeekedMessage, error)
	Redrive(ctx context.Context, max int) (int, error)
	Close() error
	options() *Options
}
