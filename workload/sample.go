package workload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/modelfleet/modelfleet/workload/spec"
)

// Dead-letter reasons: why a message was not scored. They are metric label
// values and the "reason" of a dead-letter message, so they are a closed set.
const (
	ReasonMalformed     = "malformed"      // not a JSON object, or duplicate keys
	ReasonTooLarge      = "too_large"      // payload above input.maxBytes
	ReasonMissingField  = "missing_field"  // a required field is absent or null
	ReasonBadField      = "bad_field"      // a field has the wrong type
	ReasonOutOfRange    = "out_of_range"   // an input field outside its declared range
	ReasonClockSkew     = "clock_skew"     // sample time too far from the site's clock
	ReasonPrepare       = "prepare_failed" // the workload's preparation code refused or panicked
	ReasonFeatureRange  = "feature_out_of_range"
	ReasonScoreFailed   = "score_failed" // the router could not score it after retries
	ReasonScoreRejected = "score_rejected"
)

// Sample is one validated factory message.
type Sample struct {
	Topic   string
	Machine string
	Time    time.Time
	Seq     int64
	HasSeq  bool
	Values  map[string]float64 // every present input field, by name
	Payload []byte             // the raw message, for the record
}

// Reject is why a message is dead-lettered.
type Reject struct {
	Reason  string // one of the Reason constants
	Message string // for a person
}

func (r *Reject) Error() string { return r.Reason + ": " + r.Message }

func reject(reason, format string, args ...any) *Reject {
	return &Reject{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// ParseSample decodes one payload against the manifest's input: a JSON
// object with the machine ID (string), the sample time (RFC 3339 string or
// Unix milliseconds), an optional integer sequence number and the declared
// numeric fields, each within its range. Unknown fields are ignored, so a
// gateway may add its own. now is the site's clock for the skew check.
func ParseSample(in *spec.Input, topic string, payload []byte, now time.Time) (*Sample, *Reject) {
	if len(payload) > in.MaxBytes {
		return nil, reject(ReasonTooLarge, "payload is %d bytes, more than %d", len(payload), in.MaxBytes)
	}
	fields, rj := objectFields(payload)
	if rj != nil {
		return nil, rj
	}
	s := &Sample{Topic: topic, Values: make(map[string]float64, len(in.Fields)), Payload: payload}

	raw, ok := fields[in.MachineField]
	if !ok || isNull(raw) {
		return nil, reject(ReasonMissingField, "field %q (the machine) is missing", in.MachineField)
	}
	if err := json.Unmarshal(raw, &s.Machine); err != nil || s.Machine == "" || len(s.Machine) > 128 {
		return nil, reject(ReasonBadField, "field %q must be a non-empty string of at most 128 bytes", in.MachineField)
	}
	raw, ok = fields[in.TimeField]
	if !ok || isNull(raw) {
		return nil, reject(ReasonMissingField, "field %q (the sample time) is missing", in.TimeField)
	}
	t, err := parseTime(raw)
	if err != nil {
		return nil, reject(ReasonBadField, "field %q: %v", in.TimeField, err)
	}
	s.Time = t
	if skew := now.Sub(t); skew > time.Duration(in.MaxSkew) || -skew > time.Duration(in.MaxSkew) {
		return nil, reject(ReasonClockSkew, "sample time %s is %s from the site's clock, more than %s", t.Format(time.RFC3339Nano), skew.Round(time.Millisecond), time.Duration(in.MaxSkew))
	}
	if raw, ok = fields[in.SeqField]; ok && !isNull(raw) {
		if s.Seq, err = strconv.ParseInt(string(raw), 10, 64); err != nil {
			return nil, reject(ReasonBadField, "field %q must be an integer, got %s", in.SeqField, clip(raw))
		}
		s.HasSeq = true
	}
	for _, f := range in.Fields {
		raw, ok := fields[f.Name]
		if !ok || isNull(raw) {
			if f.Optional {
				continue
			}
			return nil, reject(ReasonMissingField, "field %q is missing", f.Name)
		}
		v, err := jsonNumber(raw)
		if err != nil {
			return nil, reject(ReasonBadField, "field %q must be a number, got %s", f.Name, clip(raw))
		}
		if (f.Min != nil && v < *f.Min) || (f.Max != nil && v > *f.Max) {
			return nil, reject(ReasonOutOfRange, "field %q = %v is outside %s", f.Name, v, rangeString(f.Min, f.Max, f.Unit))
		}
		s.Values[f.Name] = v
	}
	return s, nil
}

// objectFields decodes a JSON object's top level, refusing duplicate keys:
// encoding/json would keep the last one, and a sensor reading that says two
// things must not be scored as one of them.
func objectFields(payload []byte) (map[string]json.RawMessage, *Reject) {
	if !utf8.Valid(payload) {
		return nil, reject(ReasonMalformed, "payload is not UTF-8 JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, reject(ReasonMalformed, "payload is not a JSON object")
	}
	fields := make(map[string]json.RawMessage, 8)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, reject(ReasonMalformed, "payload is not valid JSON: %v", err)
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, reject(ReasonMalformed, "payload is not valid JSON: field %q: %v", name, err)
		}
		if _, dup := fields[name]; dup {
			return nil, reject(ReasonMalformed, "duplicate field %q", name)
		}
		fields[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, reject(ReasonMalformed, "payload is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, reject(ReasonMalformed, "payload has data after the JSON object")
	}
	return fields, nil
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

func jsonNumber(raw json.RawMessage) (float64, error) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, fmt.Errorf("not a number")
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("not a finite number")
	}
	return v, nil
}

// parseTime reads an RFC 3339 string or Unix milliseconds.
func parseTime(raw json.RawMessage) (time.Time, error) {
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", s)
		}
		return t, nil
	}
	ms, err := jsonNumber(raw)
	if err != nil || ms < 0 || ms > 1e14 {
		return time.Time{}, fmt.Errorf("want an RFC 3339 string or Unix milliseconds, got %s", clip(raw))
	}
	return time.UnixMicro(int64(ms * 1000)), nil
}

func rangeString(lo, hi *float64, unit string) string {
	s := "["
	if lo != nil {
		s += strconv.FormatFloat(*lo, 'g', -1, 64)
	}
	s += ", "
	if hi != nil {
		s += strconv.FormatFloat(*hi, 'g', -1, 64)
	}
	s += "]"
	if unit != "" {
		s += " " + unit
	}
	return s
}

// clip quotes at most 40 bytes of a value for an error message.
func clip(raw []byte) string {
	if len(raw) > 40 {
		return strconv.Quote(string(raw[:40])) + "..."
	}
	return strconv.Quote(string(raw))
}
