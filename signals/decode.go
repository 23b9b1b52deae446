package signals

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/modelfleet/modelfleet"
)

// Dead-letter reasons of a message Decode rejects. They are short codes for
// operators filtering a dead-letter queue; the error text says more.
const (
	ReasonMalformedJSON = "MalformedJSON"
	ReasonUnknownSchema = "UnknownSchemaVersion"
	ReasonInvalid       = "InvalidMessage"
	ReasonIDMismatch    = "MessageIdMismatch"
)

// Limits that keep one message from costing the monitor unbounded work.
const (
	MaxFeatures      = 1000
	MaxHistogramBins = 1002 // MaxBins interior bins plus the two out-of-bounds ones
	MaxErrorCodes    = 64
	MaxBatch         = 1000
)

// DecodeError is why a message was rejected. Reason is one of the Reason
// constants.
type DecodeError struct {
	Reason string
	Msg    string
}

func (e *DecodeError) Error() string { return e.Msg }

func decodeErr(reason, format string, args ...any) *DecodeError {
	return &DecodeError{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// Decode reads and validates one schema-v1 message. It rejects malformed
// JSON, any other schema version, and a message that is not internally
// consistent (see Validate), with a *DecodeError naming the problem.
// Unknown fields are ignored: adding an optional field keeps schema v1.
func Decode(b []byte) (Message, error) {
	if m, _, isBatch, ok := fastDecode(b); ok && !isBatch {
		return check(m)
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return Message{}, jsonError(b, SchemaVersion, err)
	}
	return check(m)
}

// check validates a parsed message.
func check(m Message) (Message, error) {
	if m.SchemaVersion != SchemaVersion {
		return Message{}, schemaError(m.SchemaVersion, SchemaVersion)
	}
	if err := m.Validate(); err != nil {
		return Message{}, err
	}
	return m, nil
}

// DecodeAny reads a queue message body that holds either one message or a
// Batch. It returns the messages that are valid and, if any is not, an
// error naming the first bad one: the caller applies the good ones and
// dead-letters the queue message, which loses nothing (on a redrive the
// good ones are duplicates).
func DecodeAny(b []byte) ([]Message, error) {
	if single, batch, isBatch, ok := fastDecode(b); ok {
		if !isBatch {
			m, err := check(single)
			if err != nil {
				return nil, err
			}
			return []Message{m}, nil
		}
		return checkBatch(len(batch), func(i int) (Message, error) { return check(batch[i]) })
	}
	var probe struct {
		SchemaVersion string `json:"schemaVersion"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, jsonError(b, "", err)
	}
	switch probe.SchemaVersion {
	case SchemaVersion:
		m, err := Decode(b)
		if err != nil {
			return nil, err
		}
		return []Message{m}, nil
	case BatchSchemaVersion:
	default:
		return nil, decodeErr(ReasonUnknownSchema, "signal: schemaVersion %q is not supported: want %q or %q", probe.SchemaVersion, SchemaVersion, BatchSchemaVersion)
	}
	var raw struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, decodeErr(ReasonMalformedJSON, "signal batch: %v", err)
	}
	return checkBatch(len(raw.Messages), func(i int) (Message, error) { return Decode(raw.Messages[i]) })
}

// checkBatch decodes or checks the n messages of a batch with get.
func checkBatch(n int, get func(i int) (Message, error)) ([]Message, error) {
	if n == 0 || n > MaxBatch {
		return nil, decodeErr(ReasonInvalid, "signal batch: holds %d messages: want 1 to %d", n, MaxBatch)
	}
	out := make([]Message, 0, n)
	var first error
	for i := range n {
		m, err := get(i)
		if err != nil {
			if first == nil {
				var de *DecodeError
				errors.As(err, &de)
				first = decodeErr(de.Reason, "signal batch: message %d: %s", i, de.Msg)
			}
			continue
		}
		out = append(out, m)
	}
	return out, first
}

func schemaError(got, want string) error {
	return decodeErr(ReasonUnknownSchema, "signal: schemaVersion %q is not supported: want %q", got, want)
}

// jsonError classifies an unmarshal failure. A document that is valid JSON
// but of another schema version is reported as such, not as a type error
// in a field that version may have changed.
func jsonError(b []byte, want string, err error) error {
	var probe struct {
		SchemaVersion string `json:"schemaVersion"`
	}
	if want != "" && json.Unmarshal(b, &probe) == nil && probe.SchemaVersion != want {
		return schemaError(probe.SchemaVersion, want)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return decodeErr(ReasonInvalid, "signal: field %q: %v", te.Field, err)
	}
	return decodeErr(ReasonMalformedJSON, "signal: malformed JSON: %v", err)
}

// Validate checks that a message is complete and consistent: valid names,
// the derived ID, a window that ends after it starts, non-negative counts
// that add up (Requests = Scored + Errors, every histogram sums to Scored,
// the latency histogram to Requests), and finite sums. It cannot check the
// histograms' shape: that needs the baseline, which the monitor has.
func (m *Message) Validate() error {
	if err := m.validateHeader(); err != nil {
		return err
	}
	if err := m.validateCounts(); err != nil {
		return err
	}
	seen := make(map[string]bool, len(m.Features))
	for i := range m.Features {
		f := &m.Features[i]
		if f.Name == "" || seen[f.Name] {
			return invalidf("feature %d: name %q is empty or repeated", i, f.Name)
		}
		seen[f.Name] = true
		if err := f.validate(f.Name, m.Scored); err != nil {
			return err
		}
		if f.Nulls < 0 || f.TypeErrors < 0 || f.Nulls+f.TypeErrors > m.Rejected {
			return invalidf("feature %q: nulls %d and typeErrors %d must be non-negative and at most rejected (%d)", f.Name, f.Nulls, f.TypeErrors, m.Rejected)
		}
	}
	if m.Prediction != nil {
		return m.Prediction.validate("prediction", m.Scored)
	}
	return nil
}

func (m *Message) validateHeader() error {
	for _, c := range [...]struct{ what, v string }{{"site id", m.Site}, {"model name", m.Model}, {"model version", m.Version}} {
		if err := modelfleet.ValidateName(c.what, c.v); err != nil {
			return invalidf("%s", modelfleet.ErrorMessage(err))
		}
	}
	if m.WindowStart.IsZero() || !m.WindowEnd.After(m.WindowStart) {
		return invalidf("window %s to %s is empty or missing: windowEnd must be after windowStart", m.WindowStart.Format(timeFormat), m.WindowEnd.Format(timeFormat))
	}
	if want := MessageID(m.Site, m.Model, m.Version, m.WindowStart); m.MessageID != want {
		return decodeErr(ReasonIDMismatch, "signal: messageId %q does not match its site, model, version and windowStart (want %q)", m.MessageID, want)
	}
	if len(m.Features) > MaxFeatures {
		return invalidf("%d features: at most %d are allowed", len(m.Features), MaxFeatures)
	}
	if (len(m.Features) > 0 || m.Prediction != nil) && m.Baseline == "" {
		return invalidf("histograms need the digest of their baseline in \"baseline\"")
	}
	return nil
}

func (m *Message) validateCounts() error {
	if m.Requests < 0 || m.Scored < 0 || m.Errors < 0 || m.Rejected < 0 {
		return invalidf("counts must not be negative")
	}
	if m.Requests != m.Scored+m.Errors || m.Rejected > m.Errors {
		return invalidf("requests (%d) must equal scored (%d) + errors (%d), and rejected (%d) be at most errors", m.Requests, m.Scored, m.Errors, m.Rejected)
	}
	if len(m.ErrorCodes) > MaxErrorCodes {
		return invalidf("%d error codes: at most %d are allowed", len(m.ErrorCodes), MaxErrorCodes)
	}
	var codes int64
	for c, n := range m.ErrorCodes {
		if c == "" || n < 0 {
			return invalidf("error code %q: count %d is invalid", c, n)
		}
		codes += n
	}
	if len(m.ErrorCodes) > 0 && codes != m.Errors {
		return invalidf("errorCodes add up to %d, want errors (%d)", codes, m.Errors)
	}
	if len(m.LatencyMs) != NumLatencyBuckets {
		return invalidf("latencyMs has %d counts, want %d (schema v1 buckets)", len(m.LatencyMs), NumLatencyBuckets)
	}
	if s, ok := sum(m.LatencyMs); !ok || s != m.Requests {
		return invalidf("latencyMs counts add up to %d, want requests (%d), none negative", s, m.Requests)
	}
	return nil
}

// validate checks a histogram; name is the feature's, or "prediction".
func (h *Histogram) validate(name string, scored int64) error {
	if len(h.Counts) < 2 || len(h.Counts) > MaxHistogramBins {
		return invalidf("histogram %q: %d counts: want 2 to %d", name, len(h.Counts), MaxHistogramBins)
	}
	if s, ok := sum(h.Counts); !ok || s != scored {
		return invalidf("histogram %q: counts add up to %d, want scored (%d), none negative", name, s, scored)
	}
	for _, v := range [...]float64{h.Sum, h.BelowSum, h.AboveSum} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return invalidf("histogram %q: sums must be finite numbers", name)
		}
	}
	if h.Min == nil && h.Max == nil {
		return nil
	}
	lo, hi, ok := h.Range()
	if !ok || math.IsInf(lo, 0) || math.IsInf(hi, 0) || !(lo <= hi) || scored == 0 {
		return invalidf("histogram %q: min and max go together, finite, min at most max, and only with values counted", name)
	}
	return nil
}

// sum adds counts, reporting false for a negative one or an overflow.
func sum(counts []int64) (int64, bool) {
	var s int64
	for _, c := range counts {
		if c < 0 || s > math.MaxInt64-c {
			return s, false
		}
		s += c
	}
	return s, true
}

func invalidf(format string, args ...any) error {
	return decodeErr(ReasonInvalid, "signal: "+format, args...)
}

// timeFormat is how window bounds are written: RFC 3339, milliseconds.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"
