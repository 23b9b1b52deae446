package queue

// Azure mode: Sender and Receiver over Azure Service Bus (azservicebus).
//
// What is verified how: Azure cannot be reached from the build and test
// environment, so servicebus_test.go checks only what needs no broker: the
// mapping of a ReceivedMessage to a Delivery (properties, lock token, lock
// expiry, sequence number), of a Message to an azservicebus.Message, of
// azservicebus error codes to modelfleet codes, that settling a delivery
// this receiver does not hold is a lock-lost conflict, that the sender
// validates like the embedded queue, and that a malformed connection string
// fails at construction with a clear error. The SDK calls themselves
// (ReceiveMessages in PeekLock mode, CompleteMessage, AbandonMessage,
// DeadLetterMessage with DeadLetterOptions, RenewMessageLock, SendMessage)
// are used as documented for v1.10.0 and are untested against a live
// namespace here.
//
// The queue in Azure must be created with the properties the embedded queue
// mirrors, or the semantics differ: requiresDuplicateDetection=true (it
// cannot be turned on later) with duplicateDetectionHistoryTimeWindow PT10M,
// maxDeliveryCount 10, and a lockDuration (Service Bus's default PT1M is
// fine: Consume renews at half of it).

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/modelfleet/modelfleet"
)

var (
	_ Sender   = (*ServiceBusSender)(nil)
	_ Receiver = (*ServiceBusReceiver)(nil)
)

// NewServiceBusNamespaceClient connects (lazily) to a namespace, given
// fully qualified ("plant-fleet.servicebus.windows.net"), with an Entra ID
// credential: a workload or managed identity, so no key exists to leak and
// the namespace can keep disableLocalAuth (deploy/bicep/servicebus.bicep).
func NewServiceBusNamespaceClient(namespace string, cred azcore.TokenCredential) (*azservicebus.Client, error) {
	if err := validNamespace(namespace); err != nil {
		return nil, err
	}
	if cred == nil {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "service bus namespace %q: no credential", namespace)
	}
	c, err := azservicebus.NewClient(namespace, cred, nil)
	if err != nil {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "service bus namespace %q: %v", namespace, err)
	}
	return c, nil
}

// maxNamespaceLength is DNS's limit on a host name.
const maxNamespaceLength = 253

// validNamespace accepts a fully qualified host name, without scheme, port
// or path: what azservicebus.NewClient expects.
func validNamespace(ns string) error {
	bad := func(why string) error {
		// The value is not repeated: a connection string pasted here
		// holds a key.
		return modelfleet.Errorf(modelfleet.EINVALID, "service bus namespace %s (want the fully qualified namespace, e.g. plant-fleet.servicebus.windows.net)", why)
	}
	if ns == "" || len(ns) > maxNamespaceLength {
		return bad(fmt.Sprintf("is empty or over %d bytes", maxNamespaceLength))
	}
	labels := strings.Split(ns, ".")
	if len(labels) < 2 {
		return bad("is not fully qualified")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return bad("has an empty, long or hyphen-edged label")
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return bad("holds a character a host name may not (no scheme, port or path)")
			}
		}
	}
	return nil
}

// NewServiceBusClient connects (lazily: the first send or receive dials) to
// the namespace in a connection string ("Endpoint=sb://...;
// SharedAccessKeyName=...;SharedAccessKey=..."): a shared key, for the
// Service Bus emulator (UseDevelopmentEmulator=true) or a namespace with
// local auth enabled. In Azure use NewServiceBusNamespaceClient.
func NewServiceBusClient(connectionString string) (*azservicebus.Client, error) {
	c, err := azservicebus.NewClientFromConnectionString(connectionString, nil)
	if err != nil {
		// The SDK's parse errors name keys and the endpoint, never the key.
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "service bus connection string is invalid: %v (want Endpoint=sb://<namespace>.servicebus.windows.net/;SharedAccessKeyName=...;SharedAccessKey=...)", err)
	}
	return c, nil
}

// ServiceBusSender sends to one Service Bus queue.
type ServiceBusSender struct {
	s *azservicebus.Sender
	// MaxMessageBytes is checked before sending, as the embedded queue
	// checks it. Default DefaultMaxMessageBytes (Standard tier); raise it
	// for Premium.
	MaxMessageBytes int
}

// NewServiceBusSender returns a sender for queue.
func NewServiceBusSender(c *azservicebus.Client, queue string) (*ServiceBusSender, error) {
	s, err := c.NewSender(queue, nil)
	if err != nil {
		return nil, fmt.Errorf("queue: service bus sender for %q: %w", queue, err)
	}
	return &ServiceBusSender{s: s}, nil
}

// Send sends m with m.ID as MessageID, which the queue's duplicate
// detection keys on.
func (s *ServiceBusSender) Send(ctx context.Context, m Message) error {
	if err := checkMessage(m, orDefault(s.MaxMessageBytes, DefaultMaxMessageBytes)); err != nil {
		return err
	}
	if err := s.s.SendMessage(ctx, toServiceBus(m), nil); err != nil {
		return serviceBusError("send", err)
	}
	return nil
}

// Close closes the sender's link.
func (s *ServiceBusSender) Close(ctx context.Context) error { return s.s.Close(ctx) }

// ServiceBusReceiver receives from one Service Bus queue in PeekLock mode.
// Settling needs the SDK's ReceivedMessage, so it keeps each received one,
// keyed by lock token, until it is settled or its lock has long expired.
type ServiceBusReceiver struct {
	r *azservicebus.Receiver

	mu   sync.Mutex
	held map[string]*heldMessage
}

// heldMessage is a received message and its lock expiry as last known. The
// expiry is a copy: the SDK updates the message's own field while renewing,
// unsynchronized with Receive's pruning.
type heldMessage struct {
	msg         *azservicebus.ReceivedMessage
	lockedUntil time.Time
}

// NewServiceBusReceiver returns a PeekLock receiver for queue.
func NewServiceBusReceiver(c *azservicebus.Client, queue string) (*ServiceBusReceiver, error) {
	r, err := c.NewReceiverForQueue(queue, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModePeekLock})
	if err != nil {
		return nil, fmt.Errorf("queue: service bus receiver for %q: %w", queue, err)
	}
	return &ServiceBusReceiver{r: r, held: map[string]*heldMessage{}}, nil
}

// heldGrace is how long after its lock expired a received message is still
// kept for settling; past it, settling fails as lock lost without asking
// Service Bus, which would say the same. It absorbs clock skew.
const heldGrace = 5 * time.Minute

// Receive receives up to max messages (the SDK blocks until at least one).
// It must not be called concurrently, as the SDK's ReceiveMessages.
func (r *ServiceBusReceiver) Receive(ctx context.Context, max int) ([]Delivery, error) {
	if max <= 0 {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "receive: max must be positive, got %d", max)
	}
	msgs, err := r.r.ReceiveMessages(ctx, max, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, serviceBusError("receive", err)
	}
	ds := make([]Delivery, 0, len(msgs))
	r.mu.Lock()
	defer r.mu.Unlock()
	for token, h := range r.held {
		if time.Since(h.lockedUntil) > heldGrace {
			delete(r.held, token)
		}
	}
	for _, m := range msgs {
		d := fromServiceBus(m)
		until := d.LockedUntil
		if until.IsZero() { // PeekLock always sets it; be safe anyway
			until = time.Now()
		}
		r.held[d.LockToken] = &heldMessage{msg: m, lockedUntil: until}
		ds = append(ds, d)
	}
	return ds, nil
}

// Complete completes the message (CompleteMessage).
func (r *ServiceBusReceiver) Complete(ctx context.Context, d Delivery) error {
	return r.settle(ctx, "complete", d, func(m *azservicebus.ReceivedMessage) error {
		return r.r.CompleteMessage(ctx, m, nil)
	})
}

// Abandon abandons the message (AbandonMessage): Service Bus delivers it
// again with DeliveryCount+1, or dead-letters it past MaxDeliveryCount.
func (r *ServiceBusReceiver) Abandon(ctx context.Context, d Delivery) error {
	return r.settle(ctx, "abandon", d, func(m *azservicebus.ReceivedMessage) error {
		return r.r.AbandonMessage(ctx, m, nil)
	})
}

// DeadLetter moves the message to the dead-letter sub-queue
// (DeadLetterMessage with Reason and ErrorDescription).
func (r *ServiceBusReceiver) DeadLetter(ctx context.Context, d Delivery, reason, description string) error {
	reason, description = truncate(reason, maxReasonBytes), truncate(description, maxReasonBytes)
	return r.settle(ctx, "dead-letter", d, func(m *azservicebus.ReceivedMessage) error {
		return r.r.DeadLetterMessage(ctx, m, &azservicebus.DeadLetterOptions{Reason: &reason, ErrorDescription: &description})
	})
}

// RenewLock renews the lock (RenewMessageLock) and updates d.LockedUntil.
func (r *ServiceBusReceiver) RenewLock(ctx context.Context, d *Delivery) error {
	m := r.lookup(d.LockToken)
	if m == nil {
		return errLockLost(*d)
	}
	if err := r.r.RenewMessageLock(ctx, m, nil); err != nil {
		return serviceBusError("renew lock", err)
	}
	if m.LockedUntil != nil {
		d.LockedUntil = m.LockedUntil.UTC()
		r.mu.Lock()
		if h := r.held[d.LockToken]; h != nil {
			h.lockedUntil = d.LockedUntil
		}
		r.mu.Unlock()
	}
	return nil
}

// Close closes the receiver's link. Unsettled messages are delivered again
// when their locks expire.
func (r *ServiceBusReceiver) Close(ctx context.Context) error { return r.r.Close(ctx) }

// settle runs one settlement on the held message and forgets it, unless the
// settlement failed for a reason other than a lost lock (then it may be
// retried).
func (r *ServiceBusReceiver) settle(ctx context.Context, op string, d Delivery, fn func(*azservicebus.ReceivedMessage) error) error {
	m := r.lookup(d.LockToken)
	if m == nil {
		return errLockLost(d)
	}
	err := fn(m)
	if err != nil {
		err = serviceBusError(op, err)
		if modelfleet.ErrorCode(err) != modelfleet.ECONFLICT {
			return err
		}
	}
	r.mu.Lock()
	delete(r.held, d.LockToken)
	r.mu.Unlock()
	return err
}

func (r *ServiceBusReceiver) lookup(token string) *azservicebus.ReceivedMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h := r.held[token]; h != nil {
		return h.msg
	}
	return nil
}

// fromServiceBus maps a received message to a Delivery. Application
// properties that are not strings (Service Bus allows numbers, booleans,
// times...) are formatted with fmt, so none is silently dropped.
func fromServiceBus(m *azservicebus.ReceivedMessage) Delivery {
	d := Delivery{
		Message: Message{
			ID:          m.MessageID,
			Body:        m.Body,
			ContentType: deref(m.ContentType),
		},
		DeliveryCount: int(m.DeliveryCount),
		LockToken:     hex.EncodeToString(m.LockToken[:]),
	}
	if len(m.ApplicationProperties) > 0 {
		d.Properties = make(map[string]string, len(m.ApplicationProperties))
		for k, v := range m.ApplicationProperties {
			switch v := v.(type) {
			case string:
				d.Properties[k] = v
			case time.Time:
				d.Properties[k] = v.UTC().Format(time.RFC3339Nano)
			default:
				d.Properties[k] = fmt.Sprint(v)
			}
		}
	}
	if m.EnqueuedTime != nil {
		d.EnqueuedAt = m.EnqueuedTime.UTC()
	}
	if m.SequenceNumber != nil {
		d.SequenceNumber = *m.SequenceNumber
	}
	if m.LockedUntil != nil {
		d.LockedUntil = m.LockedUntil.UTC()
	}
	return d
}

// toServiceBus maps a Message to what the SDK sends.
func toServiceBus(m Message) *azservicebus.Message {
	out := &azservicebus.Message{MessageID: &m.ID, Body: m.Body}
	if m.ContentType != "" {
		out.ContentType = &m.ContentType
	}
	if len(m.Properties) > 0 {
		out.ApplicationProperties = make(map[string]any, len(m.Properties))
		for k, v := range m.Properties {
			out.ApplicationProperties[k] = v
		}
	}
	return out
}

// serviceBusError maps the SDK's error codes to modelfleet's, so callers
// (Consume) treat both implementations alike: a lost lock is ECONFLICT as
// in the embedded queue, a closed link ErrClosed.
func serviceBusError(op string, err error) error {
	var sbe *azservicebus.Error
	if errors.As(err, &sbe) {
		switch sbe.Code {
		case azservicebus.CodeLockLost:
			return modelfleet.Errorf(modelfleet.ECONFLICT, "service bus %s: lock lost: %v", op, err)
		case azservicebus.CodeUnauthorizedAccess:
			return modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "service bus %s: unauthorized: %v", op, err)
		case azservicebus.CodeNotFound:
			return modelfleet.Errorf(modelfleet.ENOTFOUND, "service bus %s: entity not found: %v", op, err)
		case azservicebus.CodeClosed:
			return fmt.Errorf("queue: service bus %s: %w (%w)", op, ErrClosed, err)
		}
	}
	return fmt.Errorf("queue: service bus %s: %w", op, err)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// orDefault returns v, or def when v is not positive.
func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}
