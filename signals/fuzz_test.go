package signals

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	m := validMessage()
	f.Add(encode(f, m))
	_, batch := batchBody([]Buffered{{Body: encode(f, m)}, {Body: encode(f, m)}})
	f.Add(batch)
	pretty, _ := json.MarshalIndent(m, " ", "\t")
	f.Add(pretty)
	for _, s := range []string{
		`{}`, `null`, `[]`, `{"schemaVersion":"modelfleet.signal/v2"}`,
		`{"schemaVersion":"modelfleet.signal/v1","requests":1e3}`,
		`{"schemaVersion":"modelfleet.signal/v1","latencyMs":[-0,01]}`,
		`{"schemaVersion":"modelfleet.signal/v1","site":"a\u0062"}`,
		`{"schemaVersion":"modelfleet.signal/v1","site":"x","site":"y"}`,
		`{"schemaVersion":"modelfleet.signal-batch/v1","messages":[{},{"x":1}]}`,
		`{"schemaVersion":"modelfleet.signal/v1","windowStart":"2030-01-01T10:00:00.5+01:00"}`,
		`{"schemaVersion":"modelfleet.signal/v1","features":[{"name":"a","counts":[],"sum":-0.0e-0}]}`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzDecode: any input either decodes into a message that validates and
// survives a round trip unchanged, or is rejected with a reason; it never
// panics.
func FuzzDecode(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := DecodeAny(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("error %v is not a *DecodeError with a reason", err)
			}
		}
		for _, m := range msgs {
			if err := m.Validate(); err != nil {
				t.Fatalf("decoded message does not validate: %v", err)
			}
			again, err := Decode(encode(t, m))
			if err != nil || !reflect.DeepEqual(again, m) {
				t.Fatalf("round trip: %v\n got %+v\nwant %+v", err, again, m)
			}
		}
	})
}

// FuzzFastDecode holds the fast decoder to encoding/json: whenever it
// accepts an input, encoding/json accepts it too and means the same.
func FuzzFastDecode(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		single, batch, isBatch, ok := fastDecode(b)
		if !ok {
			return
		}
		if isBatch {
			var raw struct {
				SchemaVersion string            `json:"schemaVersion"`
				Messages      []json.RawMessage `json:"messages"`
			}
			if err := json.Unmarshal(b, &raw); err != nil || raw.SchemaVersion != BatchSchemaVersion || len(raw.Messages) != len(batch) {
				t.Fatalf("fast decoder accepted a batch encoding/json reads otherwise: %v", err)
			}
			for i, r := range raw.Messages {
				var m Message
				if err := json.Unmarshal(r, &m); err != nil || !reflect.DeepEqual(m, batch[i]) {
					t.Fatalf("batch message %d: %v\n json %+v\n fast %+v", i, err, m, batch[i])
				}
			}
			return
		}
		var m Message
		if err := json.Unmarshal(b, &m); err != nil || !reflect.DeepEqual(m, single) {
			t.Fatalf("encoding/json: %v\n json %+v\n fast %+v", err, m, single)
		}
	})
}
