package events

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"

	"github.com/modelfleet/modelfleet"
)

// Schemas an Event can arrive in.
const (
	SchemaEventGrid   = "eventgrid"
	SchemaCloudEvents = "cloudevents"
)

// EventSubscriptionValidation is the event Event Grid sends to a new webhook
// subscription (Event Grid schema); the endpoint proves it wants the events
// by echoing the validation code.
const EventSubscriptionValidation = "Microsoft.EventGrid.SubscriptionValidationEvent"

// MaxBatchEvents is the most events one delivery may hold. It is Event Grid's
// own ceiling for a subscription's "max events per batch" (1 to 5,000), so a
// correctly configured subscription never exceeds it.
const MaxBatchEvents = 5000

// Event is one event, whichever schema it arrived in.
type Event struct {
	ID          string
	Type        string // eventType (Event Grid) or type (CloudEvents)
	Source      string // topic (Event Grid) or source (CloudEvents)
	Subject     string
	DataVersion string // Event Grid only
	Time        time.Time
	Data        json.RawMessage // nil when the event has no data
	Schema      string          // SchemaEventGrid or SchemaCloudEvents
}

// ErrUnsupportedMediaType is in the chain of Decode's error when the content
// type is neither JSON nor CloudEvents JSON (the handler answers 415).
var ErrUnsupportedMediaType = errors.New("unsupported media type")

// Decode parses a webhook body as Event Grid delivers it. contentType is the
// request's Content-Type: application/json (Event Grid schema, or CloudEvents
// sniffed by their "specversion"), application/cloudevents+json or
// application/cloudevents-batch+json; empty means sniff. The body may be an
// array of events or a single event object.
//
// Errors are *modelfleet.Error: EINVALID naming the event index and field
// (`event[2]: missing "eventType"`), or ETOOLARGE for more than
// MaxBatchEvents events; an unsupported content type also wraps
// ErrUnsupportedMediaType.
func Decode(body []byte, contentType string) ([]Event, error) {
	cloud, err := mediaType(contentType)
	if err != nil {
		return nil, err
	}
	raws, err := split(body)
	if err != nil {
		return nil, err
	}
	if len(raws) == 0 {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "the batch holds no events")
	}
	if len(raws) > MaxBatchEvents {
		return nil, modelfleet.Errorf(modelfleet.ETOOLARGE, "the batch holds %d events: at most %d are accepted", len(raws), MaxBatchEvents)
	}
	evs := make([]Event, len(raws))
	for i, raw := range raws {
		if evs[i], err = decodeOne(raw, cloud); err != nil {
			return nil, modelfleet.Errorf(modelfleet.EINVALID, "event[%d]: %v", i, err)
		}
	}
	return evs, nil
}

// mediaType reports whether contentType announces CloudEvents; plain JSON
// and an absent type leave the schema to be sniffed per event.
func mediaType(contentType string) (cloud bool, err error) {
	if strings.TrimSpace(contentType) == "" {
		return false, nil
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false, unsupported("content type %q is malformed", clip(contentType))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return false, unsupported("charset %q is not supported: send utf-8", clip(cs))
	}
	switch mt {
	case "application/json", "text/json":
		return false, nil
	case "application/cloudevents+json", "application/cloudevents-batch+json":
		return true, nil
	}
	return false, unsupported("content type %q is not supported: send application/json, application/cloudevents+json or application/cloudevents-batch+json", clip(mt))
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrUnsupportedMediaType, modelfleet.Errorf(modelfleet.EINVALID, format, args...))
}

// split returns the events of an array, or the one event of an object.
func split(body []byte) ([]json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "the body is empty")
	}
	var raws []json.RawMessage
	var err error
	switch body[0] {
	case '[':
		err = json.Unmarshal(body, &raws)
	case '{':
		var one json.RawMessage
		err = json.Unmarshal(body, &one)
		raws = []json.RawMessage{one}
	default:
		if !json.Valid(body) {
			return nil, modelfleet.Errorf(modelfleet.EINVALID, "the body is not valid JSON")
		}
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "the body must be a JSON array of events or one event object")
	}
	if err != nil {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "the body is not valid JSON: %v", err)
	}
	return raws, nil
}

// decodeOne validates one event; its errors name the offending field. cloud
// forces the CloudEvents schema; otherwise "specversion" selects it.
func decodeOne(raw json.RawMessage, cloud bool) (Event, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return Event{}, errors.New("must be a JSON object")
	}
	if _, ok := m["specversion"]; ok || cloud {
		return decodeCloudEvent(m)
	}
	return decodeEventGrid(m)
}

// decodeEventGrid reads the Event Grid schema: id, eventType, subject and
// eventTime are required; topic and dataVersion are optional because
// publishers may omit them (Event Grid fills them on delivery). The subject
// may be empty: Event Grid's own subscription validation event has "".
func decodeEventGrid(m map[string]json.RawMessage) (Event, error) {
	ev := Event{Schema: SchemaEventGrid, Data: data(m["data"])}
	var err error
	f := fields{m: m}
	ev.ID = f.str("id", true)
	ev.Type = f.str("eventType", true)
	ev.Subject = f.str("subject", false)
	if raw, ok := m["subject"]; (!ok || string(raw) == "null") && f.err == nil {
		f.err = fmt.Errorf("missing %q", "subject")
	}
	ev.Source = f.str("topic", false)
	ev.DataVersion = f.str("dataVersion", false)
	when := f.str("eventTime", true)
	if f.err != nil {
		return Event{}, f.err
	}
	if ev.Time, err = parseTime("eventTime", when); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// decodeCloudEvent reads CloudEvents 1.0 (JSON format): specversion, id,
// source and type are required; subject and time are optional.
func decodeCloudEvent(m map[string]json.RawMessage) (Event, error) {
	ev := Event{Schema: SchemaCloudEvents}
	f := fields{m: m}
	spec := f.str("specversion", true)
	ev.ID = f.str("id", true)
	ev.Source = f.str("source", true)
	ev.Type = f.str("type", true)
	ev.Subject = f.str("subject", false)
	when := f.str("time", false)
	b64 := f.str("data_base64", false)
	if f.err != nil {
		return Event{}, f.err
	}
	if spec != "1.0" {
		return Event{}, fmt.Errorf(`"specversion" is %q: only "1.0" is supported`, clip(spec))
	}
	if when != "" {
		t, err := parseTime("time", when)
		if err != nil {
			return Event{}, err
		}
		ev.Time = t
	}
	ev.Data = data(m["data"])
	if raw, ok := m["data_base64"]; ok && string(raw) != "null" && ev.Data != nil {
		return Event{}, errors.New(`"data" and "data_base64" are mutually exclusive`)
	}
	if b64 != "" {
		dec, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return Event{}, errors.New(`"data_base64" is not valid base64`)
		}
		// Event.Data is JSON: keep decoded JSON as is, and anything else as
		// the base64 string it arrived as (still valid JSON, nothing lost).
		ev.Data = m["data_base64"]
		if json.Valid(dec) {
			ev.Data = dec
		}
	}
	return ev, nil
}

// data treats an absent and a null "data" alike.
func data(raw json.RawMessage) json.RawMessage {
	if raw == nil || string(raw) == "null" {
		return nil
	}
	return raw
}

// fields reads string attributes, keeping the first error.
type fields struct {
	m   map[string]json.RawMessage
	err error
}

// str returns the string under key; null and "" count as missing.
func (f *fields) str(key string, required bool) string {
	if f.err != nil {
		return ""
	}
	raw, ok := f.m[key]
	if !ok || string(raw) == "null" {
		if required {
			f.err = fmt.Errorf("missing %q", key)
		}
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		f.err = fmt.Errorf("%q must be a string", key)
		return ""
	}
	if s == "" && required {
		f.err = fmt.Errorf("missing %q", key)
	}
	return s
}

// parseTime accepts RFC 3339, and also a time without zone, read as UTC:
// Azure sometimes omits the "Z" (the azsystemevents SDK tolerates it too),
// and rejecting such an event would dead-letter it.
func parseTime(key, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is %q: want an RFC 3339 time", key, clip(s))
}

// clip bounds what of the input is echoed into errors and logs.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
