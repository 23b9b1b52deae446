package registry

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/modelfleet/modelfleet"
	"go.etcd.io/bbolt"
)

// Event is one event in the Event Grid event schema, as Azure ML publishes
// its system events (dataVersion "2", metadataVersion "1").
type Event struct {
	ID              string              `json:"id"`
	Topic           string              `json:"topic"`
	Subject         string              `json:"subject"`
	EventType       string              `json:"eventType"`
	EventTime       string              `json:"eventTime"`
	Data            ModelRegisteredData `json:"data"`
	DataVersion     string              `json:"dataVersion"`
	MetadataVersion string              `json:"metadataVersion"`
}

// ModelRegisteredData is the data of Azure ML's ModelRegistered event.
type ModelRegisteredData struct {
	ModelName       string            `json:"modelName"`
	ModelVersion    string            `json:"modelVersion"`
	ModelTags       map[string]string `json:"modelTags"`
	ModelProperties map[string]string `json:"modelProperties"`
}

// DeadLetter is an event Event Grid would not retry: the event itself plus
// the delivery properties Event Grid adds to the dead-lettered copy.
type DeadLetter struct {
	Event
	DeadLetterReason        string `json:"deadLetterReason"`
	DeliveryAttempts        int    `json:"deliveryAttempts"`
	LastDeliveryOutcome     string `json:"lastDeliveryOutcome"`
	LastHTTPStatusCode      int    `json:"lastHttpStatusCode"`
	LastDeliveryAttemptTime string `json:"lastDeliveryAttemptTime"`
	// Response is the start of the endpoint's response body, for diagnosis.
	Response string `json:"response,omitempty"`
}

// Azure ML system events carry the workspace's ARM resource ID as topic. The
// embedded registry has no subscription, so it uses the all-zero one.
const topicPrefix = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/modelfleet/providers/Microsoft.MachineLearningServices/workspaces/"

func (r *Registry) newEvent(m modelfleet.Model, at time.Time) Event {
	return Event{
		ID:        uuid.NewString(),
		Topic:     topicPrefix + r.opts.Workspace,
		Subject:   "models/" + m.Name + ":" + m.Version,
		EventType: modelfleet.EventModelRegistered,
		EventTime: at.Format(time.RFC3339Nano),
		Data: ModelRegisteredData{
			ModelName:    m.Name,
			ModelVersion: m.Version,
			// Azure ML sends {} rather than null for a model without any.
			ModelTags:       nonNil(m.Tags),
			ModelProperties: nonNil(m.Properties),
		},
		DataVersion:     "2",
		MetadataVersion: "1",
	}
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// appendOutbox adds ev at the end of the outbox, within the caller's
// transaction. Keys are the bucket's sequence, big-endian, so a cursor walks
// the outbox in registration order.
func appendOutbox(tx *bbolt.Tx, ev Event) error {
	b := tx.Bucket(bucketOutbox)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	v, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return b.Put(seqKey(seq), v)
}

func seqKey(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// nudge wakes the delivery loop so a new event goes out now rather than at
// some poll interval. It never blocks: one pending nudge is enough.
func (r *Registry) nudge() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Pending returns the number of events not yet delivered.
func (r *Registry) Pending() int {
	n := 0
	_ = r.db.View(func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucketOutbox).Stats().KeyN
		return nil
	})
	return n
}

// DeadLetters returns the events that were refused for good, oldest first.
func (r *Registry) DeadLetters() ([]DeadLetter, error) {
	dls := []DeadLetter{}
	err := r.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketDeadLetter).ForEach(func(_, v []byte) error {
			var dl DeadLetter
			if err := json.Unmarshal(v, &dl); err != nil {
				return err
			}
			dls = append(dls, dl)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("registry: list dead letters: %w", err)
	}
	return dls, nil
}

// head returns the oldest pending event, or a nil key when there is none.
func (r *Registry) head() (key, ev []byte, err error) {
	err = r.db.View(func(tx *bbolt.Tx) error {
		k, v := tx.Bucket(bucketOutbox).Cursor().First()
		if k != nil { // bbolt's slices are valid only inside the transaction
			key, ev = bytes.Clone(k), bytes.Clone(v)
		}
		return nil
	})
	return key, ev, err
}

// deliverLoop pushes outbox events to the webhook, oldest first, one per
// request, until ctx is done. Like Event Grid it delivers at least once: an
// event leaves the outbox only after a 2xx, so a crash between the response
// and the delete sends it again; receivers dedupe by event id or subject
// (modelfleet.ReleaseWorkflowID does). Unlike Event Grid it keeps order,
// which costs nothing at one registry's rate and spares receivers a race.
func (r *Registry) deliverLoop(ctx context.Context) {
	backoff := r.opts.RetryInitial
	attempts := 0 // of the current head event
	for ctx.Err() == nil {
		key, raw, err := r.head()
		if err != nil {
			r.log.Error("read event outbox", "err", err)
			if modelfleet.Sleep(ctx, r.opts.RetryMax) != nil {
				return
			}
			continue
		}
		if key == nil {
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
			}
			continue
		}

		status, body, err := r.post(ctx, raw, attempts)
		if err != nil && ctx.Err() != nil {
			return // closing; the event stays pending
		}
		attempts++
		switch {
		case err == nil && status >= 200 && status < 300:
			r.metrics.deliveries.WithLabelValues("delivered").Inc()
			backoff, attempts = r.opts.RetryInitial, 0
			if !r.settle(ctx, key, nil) {
				return
			}
			continue
		case err == nil && (status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge):
			// Event Grid does not retry these for a webhook: the receiver
			// says the event itself is wrong, and will say so every time.
			dl := deadLetter(raw, status, body, attempts)
			r.metrics.deliveries.WithLabelValues("dead_lettered").Inc()
			r.log.Error("event dead-lettered", "event", dl.ID, "subject", dl.Subject, "status", status, "response", dl.Response)
			backoff, attempts = r.opts.RetryInitial, 0
			if !r.settle(ctx, key, &dl) {
				return
			}
			continue
		}

		r.metrics.deliveries.WithLabelValues("failed").Inc()
		wait := jitter(backoff)
		if err != nil {
			r.log.Warn("event delivery failed; retrying", "attempt", attempts, "retry_in", wait, "err", err)
		} else {
			r.log.Warn("event delivery refused; retrying", "attempt", attempts, "retry_in", wait, "status", status, "response", body)
		}
		if modelfleet.Sleep(ctx, wait) != nil {
			return
		}
		backoff = min(2*backoff, r.opts.RetryMax)
	}
}

// post sends one event as Event Grid does: a JSON array holding it, with the
// aeg-* headers of a notification delivery.
func (r *Registry) post(ctx context.Context, raw []byte, deliveryCount int) (status int, body string, err error) {
	payload := make([]byte, 0, len(raw)+2)
	payload = append(append(append(payload, '['), raw...), ']')
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.opts.WebhookURL, bytes.NewReader(payload))
	if err != nil {
		return 0, "", fmt.Errorf("registry: build delivery request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("aeg-event-type", "Notification")
	req.Header.Set("aeg-delivery-count", fmt.Sprint(deliveryCount))
	req.Header.Set("aeg-data-version", "2")
	req.Header.Set("aeg-metadata-version", "1")
	resp, err := r.opts.HTTPClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	return resp.StatusCode, strings.TrimSpace(string(snippet)), nil
}

func deadLetter(raw []byte, status int, body string, attempts int) DeadLetter {
	dl := DeadLetter{
		LastHTTPStatusCode:      status,
		DeliveryAttempts:        attempts,
		LastDeliveryOutcome:     strings.ReplaceAll(http.StatusText(status), " ", ""),
		LastDeliveryAttemptTime: time.Now().UTC().Format(time.RFC3339Nano),
		Response:                body,
	}
	// Event Grid's reason for a 400, e.g., is "UndeliverableDueToHttpBadRequest".
	dl.DeadLetterReason = "UndeliverableDueToHttp" + dl.LastDeliveryOutcome
	_ = json.Unmarshal(raw, &dl.Event) // we wrote it; a bad one is kept as far as it parses
	return dl
}

// settle removes a handled event from the outbox and, when dl is set, files
// it as a dead letter in the same transaction so it is never in both or
// neither. It reports false when ctx ended while it waited out a failure.
func (r *Registry) settle(ctx context.Context, key []byte, dl *DeadLetter) bool {
	err := r.db.Update(func(tx *bbolt.Tx) error {
		if dl != nil {
			b := tx.Bucket(bucketDeadLetter)
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			v, err := json.Marshal(dl)
			if err != nil {
				return err
			}
			if err := b.Put(seqKey(seq), v); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketOutbox).Delete(key)
	})
	if err != nil {
		// The event stays pending and goes out again: a duplicate, not a
		// loss. Pause so a failing database does not turn into a send loop.
		r.log.Error("settle delivered event", "err", err)
		return modelfleet.Sleep(ctx, r.opts.RetryMax) == nil
	}
	return true
}

// jitter spreads d by ±20%, as Event Grid adds randomness to its retry
// schedule so that many senders do not retry in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
