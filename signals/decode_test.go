package signals

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// validMessage is a small, consistent message.
func validMessage() Message {
	start := time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)
	return Message{
		SchemaVersion: SchemaVersion,
		MessageID:     MessageID("plant-1", "bearing-failure", "3", start),
		Site:          "plant-1", Model: "bearing-failure", Version: "3",
		WindowStart: start, WindowEnd: start.Add(time.Minute),
		Baseline: "sha256:" + strings.Repeat("ab", 32),
		Requests: 5, Scored: 4, Errors: 1, Rejected: 1,
		ErrorCodes: map[string]int64{"invalid": 1},
		LatencyMs:  []int64{0, 0, 3, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		Features: []FeatureHistogram{
			{Name: "a", Histogram: Histogram{Counts: []int64{1, 2, 1, 0}, Sum: 3.5, BelowSum: -1, Min: f64(-1), Max: f64(2.5)}, Nulls: 1},
			{Name: "b", Histogram: Histogram{Counts: []int64{0, 4, 0, 0}, Sum: 8}, TypeErrors: 1},
		},
		Prediction: &Histogram{Counts: []int64{0, 3, 1, 0}, Sum: 1.2},
	}
}

func f64(v float64) *float64 { return &v }

func encode(t testing.TB, m any) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeRoundTrip(t *testing.T) {
	want := validMessage()
	got, err := Decode(encode(t, want))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	// The same document indented, with unknown fields: the slow path.
	var loose map[string]any
	_ = json.Unmarshal(encode(t, want), &loose)
	loose["addedLater"] = map[string]any{"x": 1}
	pretty, _ := json.MarshalIndent(loose, "", "  ")
	if got, err := Decode(pretty); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("with an unknown field: %v\n got %+v", err, got)
	}
}

func TestDecodeRejects(t *testing.T) {
	mod := func(f func(m *Message)) []byte {
		m := validMessage()
		f(&m)
		return encode(t, m)
	}
	cases := []struct {
		name, reason, mentions string
		body                   []byte
	}{
		{"not json", ReasonMalformedJSON, "malformed JSON", []byte(`{"schemaVersion":`)},
		{"trailing garbage", ReasonMalformedJSON, "malformed JSON", append(encode(t, validMessage()), '}')},
		{"not an object", ReasonInvalid, "", []byte(`[1,2]`)},
		{"unknown version", ReasonUnknownSchema, `"modelfleet.signal/v2"`, mod(func(m *Message) { m.SchemaVersion = "modelfleet.signal/v2" })},
		{"unknown version, other shape", ReasonUnknownSchema, `"modelfleet.signal/v2"`, []byte(`{"schemaVersion":"modelfleet.signal/v2","requests":"many"}`)},
		{"no version", ReasonUnknownSchema, `""`, []byte(`{}`)},
		{"wrong type", ReasonInvalid, `"requests"`, []byte(`{"schemaVersion":"modelfleet.signal/v1","requests":"many"}`)},
		{"id mismatch", ReasonIDMismatch, "messageId", mod(func(m *Message) { m.MessageID = "sig-0" })},
		{"bad site", ReasonInvalid, "site id", mod(func(m *Message) { m.Site = "../x" })},
		{"empty window", ReasonInvalid, "windowEnd", mod(func(m *Message) { m.WindowEnd = m.WindowStart })},
		{"requests do not add up", ReasonInvalid, "requests", mod(func(m *Message) { m.Requests = 9 })},
		{"negative", ReasonInvalid, "negative", mod(func(m *Message) { m.Errors, m.Scored = -1, 6 })},
		{"error codes do not add up", ReasonInvalid, "errorCodes", mod(func(m *Message) { m.ErrorCodes["internal"] = 3 })},
		{"latency buckets", ReasonInvalid, "latencyMs", mod(func(m *Message) { m.LatencyMs = m.LatencyMs[:3] })},
		{"histogram total", ReasonInvalid, `"a"`, mod(func(m *Message) { m.Features[0].Counts[0] = 7 })},
		{"repeated feature", ReasonInvalid, `"a"`, mod(func(m *Message) { m.Features[1].Name = "a" })},
		{"nulls beyond rejected", ReasonInvalid, "nulls", mod(func(m *Message) { m.Features[0].Nulls = 2 })},
		{"histograms without baseline", ReasonInvalid, "baseline", mod(func(m *Message) { m.Baseline = "" })},
		{"prediction total", ReasonInvalid, "prediction", mod(func(m *Message) { m.Prediction.Counts[1] = 0 })},
		{"min without max", ReasonInvalid, `"a": min and max`, mod(func(m *Message) { m.Features[0].Max = nil })},
		{"max without min", ReasonInvalid, `"b": min and max`, mod(func(m *Message) { m.Features[1].Max = f64(2) })},
		{"min above max", ReasonInvalid, `"a": min and max`, mod(func(m *Message) { m.Features[0].Min = f64(3) })},
		{"range without values", ReasonInvalid, `"prediction": min and max`, mod(func(m *Message) {
			m.Requests, m.Scored, m.Errors, m.Rejected, m.ErrorCodes = 0, 0, 0, 0, nil
			m.LatencyMs = make([]int64, NumLatencyBuckets)
			m.Features = nil
			m.Prediction = &Histogram{Counts: []int64{0, 0}, Min: f64(0), Max: f64(0)}
		})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.body)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want a *DecodeError", err)
			}
			if de.Reason != c.reason || !strings.Contains(de.Msg, c.mentions) {
				t.Errorf("reason %q, message %q; want %q mentioning %q", de.Reason, de.Msg, c.reason, c.mentions)
			}
			if de.Msg != strings.ToLower(de.Msg[:1])+de.Msg[1:] {
				t.Errorf("error %q starts with a capital", de.Msg)
			}
		})
	}
}

func TestDecodeAnyBatch(t *testing.T) {
	a, b := validMessage(), validMessage()
	b.WindowStart, b.WindowEnd = a.WindowEnd, a.WindowEnd.Add(time.Minute)
	b.MessageID = MessageID(b.Site, b.Model, b.Version, b.WindowStart)
	items := []Buffered{{ID: a.MessageID, Body: encode(t, a)}, {ID: b.MessageID, Body: encode(t, b)}}
	id, body := batchBody(items)
	if id != BatchID([]string{a.MessageID, b.MessageID}) {
		t.Errorf("batch id %q", id)
	}
	got, err := DecodeAny(body)
	if err != nil || len(got) != 2 || !reflect.DeepEqual(got[1], b) {
		t.Fatalf("batch: %v %+v", err, got)
	}
	// One bad message: the good one is returned with an error naming the bad.
	bad := b
	bad.Requests = 99
	_, body = batchBody([]Buffered{items[0], {ID: "x", Body: encode(t, bad)}})
	got, err = DecodeAny(body)
	var de *DecodeError
	if len(got) != 1 || !errors.As(err, &de) || de.Reason != ReasonInvalid || !strings.Contains(de.Msg, "message 1") {
		t.Errorf("batch with a bad message: %d good, err %v", len(got), err)
	}
	for _, s := range []string{`{"schemaVersion":"modelfleet.signal-batch/v1","messages":[]}`, `{"schemaVersion":"modelfleet.signal-batch/v7"}`, `"x"`} {
		if _, err := DecodeAny([]byte(s)); !errors.As(err, &de) {
			t.Errorf("DecodeAny(%s) = %v, want a *DecodeError", s, err)
		}
	}
}

func TestMessageIDIsDeterministic(t *testing.T) {
	start := time.Date(2030, 1, 1, 10, 0, 0, 123456789, time.UTC)
	id := MessageID("s", "m", "1", start)
	if id != MessageID("s", "m", "1", start.Truncate(time.Millisecond)) || len(id) != 36 {
		t.Errorf("id %q", id)
	}
	if id == MessageID("s", "m", "1", start.Add(time.Millisecond)) || MessageID("ab", "c", "1", start) == MessageID("a", "bc", "1", start) {
		t.Error("different windows or names share an id")
	}
}

// The edge's messages, with their optional ranges, take the fast path.
func TestFastDecodeRange(t *testing.T) {
	want := validMessage()
	single, _, _, ok := fastDecode(encode(t, want))
	if !ok || !reflect.DeepEqual(single, want) {
		t.Fatalf("fast decoder: ok %v\n got %+v\nwant %+v", ok, single, want)
	}
	if lo, hi, ok := single.Features[0].Range(); !ok || lo != -1 || hi != 2.5 {
		t.Errorf("range %v–%v (%v)", lo, hi, ok)
	}
	if _, _, ok := single.Features[1].Range(); ok {
		t.Error("a histogram without a range has one")
	}
}

// Histogram counts take a one-pass path in the fast decoder; every other
// spelling of a number falls back and must mean what encoding/json reads.
func TestFastDecodeCounts(t *testing.T) {
	for _, counts := range []string{
		`[0,1,22,333]`, `[ 1 , 2 ]`, `[01,2]`, `[-1,2]`, `[1.0,2]`, `[1e2,2]`, `[1E+2,2]`,
		`[999999999999999999,1]`, `[9223372036854775807,1]`, `[9223372036854775808,1]`,
		`[12345678901234567890,1]`, `[1,2`, `[1,,2]`, `[1 2]`, `[]`, `[0]`, `[00]`, `[1]`,
	} {
		b := []byte(`{"schemaVersion":"modelfleet.signal/v1","latencyMs":` + counts + `,"prediction":{"counts":` + counts + `,"sum":0}}`)
		single, _, _, ok := fastDecode(b)
		var m Message
		err := json.Unmarshal(b, &m)
		if !ok {
			continue // decoded by encoding/json then: nothing to compare
		}
		if err != nil {
			t.Errorf("%s: the fast decoder accepted what encoding/json rejects (%v)", counts, err)
			continue
		}
		if !reflect.DeepEqual(single.LatencyMs, m.LatencyMs) || !reflect.DeepEqual(single.Prediction, m.Prediction) {
			t.Errorf("%s: fast %v %+v, encoding/json %v %+v", counts, single.LatencyMs, single.Prediction, m.LatencyMs, m.Prediction)
		}
	}
}
