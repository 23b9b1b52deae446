package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/orchestrator/orchestratortest"
)

// addSeeds seeds a fuzz target with every sample payload under testdata and
// a few malformed bodies, each with the content types Event Grid sends.
func addSeeds(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		ct := ctJSON
		if strings.HasPrefix(filepath.Base(file), "cloudevent") {
			ct = ctCloudBatch
		}
		f.Add(b, ct)
		f.Add(b, "")
	}
	for _, s := range []string{
		"", "[]", "{}", "null", "[null]", "[1]", `[{"id":1}]`, "[{", `{"specversion":"1.0"}`,
		`{"specversion":"1.0","id":"1","source":"/s","type":"T","data_base64":"e30="}`,
		`[{"id":"transient","eventType":"T","subject":"s","eventTime":"2026-01-01T00:00:00"}]`,
		`[{"id":"1","eventType":"Microsoft.MachineLearningServices.ModelRegistered","subject":"s","eventTime":"2026-01-01T00:00:00Z","data":{"ModelName":"a","ModelVersion":1e400}}]`,
		`[{"id":"1","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","subject":"","eventTime":"2026-01-01T00:00:00Z","data":{"validationCode":null}}]`,
	} {
		f.Add([]byte(s), ctJSON)
	}
	f.Add([]byte("[]"), "text/plain")
	f.Add([]byte("[]"), "application/json; charset=latin1")
}

func FuzzDecode(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		evs, err := Decode(body, contentType)
		if err != nil {
			if evs != nil {
				t.Errorf("Decode returned events and an error")
			}
			switch code := modelfleet.ErrorCode(err); code {
			case modelfleet.EINVALID, modelfleet.ETOOLARGE:
			default:
				t.Errorf("error code = %q, want invalid or too_large (%v)", code, err)
			}
			if modelfleet.ErrorMessage(err) == "" {
				t.Errorf("error without a message")
			}
			return
		}
		if len(evs) == 0 || len(evs) > MaxBatchEvents {
			t.Errorf("Decode returned %d events", len(evs))
		}
		for i, ev := range evs {
			if ev.ID == "" || ev.Type == "" {
				t.Errorf("event[%d] = %+v: missing id or type", i, ev)
			}
			if ev.Schema != SchemaEventGrid && ev.Schema != SchemaCloudEvents {
				t.Errorf("event[%d]: schema %q", i, ev.Schema)
			}
			if ev.Schema == SchemaCloudEvents && ev.Source == "" {
				t.Errorf("event[%d]: cloud event without source", i)
			}
			if ev.Data != nil && !json.Valid(ev.Data) {
				t.Errorf("event[%d]: data %q is not JSON", i, ev.Data)
			}
			// The typed decoders must not panic either, whatever the type.
			ev.Type = modelfleet.EventModelRegistered
			if reg, err := DecodeModelRegistered(ev); err == nil {
				if err := reg.Model.Validate(); err != nil {
					t.Errorf("event[%d]: decoded an invalid model: %v", i, err)
				}
			} else if code := modelfleet.ErrorCode(err); code != modelfleet.EINVALID {
				t.Errorf("event[%d]: DecodeModelRegistered error code %q", i, code)
			}
			ev.Type = modelfleet.EventModelDeployed
			_, _ = DecodeModelDeployed(ev)
			ev.Type = modelfleet.EventRunCompleted
			_, _ = DecodeRunCompleted(ev)
			ev.Type = modelfleet.EventRunStatusChanged
			_, _ = DecodeRunStatusChanged(ev)
			ev.Type = modelfleet.EventDatasetDriftDetected
			_, _ = DecodeDatasetDriftDetected(ev)
		}
	})
}

// fuzzDispatcher behaves like a real one: ModelRegistered data is decoded
// (invalid data is a 400), and an event with id "transient" fails as if
// Temporal were down (503).
var fuzzDispatcher = DispatcherFunc(func(ctx context.Context, ev Event) error {
	if ev.ID == "transient" {
		return errors.New("temporal unavailable")
	}
	if ev.Type == modelfleet.EventModelRegistered {
		_, err := DecodeModelRegistered(ev)
		return err
	}
	return nil
})

func FuzzHandler(f *testing.F) {
	addSeeds(f)
	h := NewHandler(fuzzDispatcher, HandlerOptions{Logger: quietLogger(), MaxBodyBytes: 64 << 10})
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		r := httptest.NewRequest(http.MethodPost, "/api/events", bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case 200, 400, 413, 415, 503:
		default:
			t.Fatalf("status = %d (%s)", w.Code, w.Body)
		}
		if got, want := w.Header().Get("Content-Type"), "application/json"; got != want {
			t.Errorf("Content-Type = %q, want %q", got, want)
		}
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("body %q is not a JSON object: %v", w.Body, err)
		}
		if w.Code == 200 {
			_, dispatched := m["dispatched"]
			_, validated := m["validationResponse"]
			if !dispatched && !validated {
				t.Errorf("200 body %s has neither dispatched nor validationResponse", w.Body)
			}
			return
		}
		if code, _ := m["error"].(string); code == "" {
			t.Errorf("error body %s has no error code", w.Body)
		}
		if msg, _ := m["message"].(string); msg == "" {
			t.Errorf("error body %s has no message", w.Body)
		}
	})
}

// corpus decodes every testdata file with the content type Event Grid would
// send it with.
func corpus(tb testing.TB) map[string][]Event {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string][]Event{}
	for _, file := range files {
		name := filepath.Base(file)
		ct := ctJSON
		if strings.HasPrefix(name, "cloudevent") {
			ct = ctCloudBatch
		}
		evs, err := Decode(load(tb, name), ct)
		if err != nil {
			tb.Fatalf("Decode(%s): %v", name, err)
		}
		out[name] = evs
	}
	return out
}

// typed is the decoder of each Azure ML type, reduced to its error.
var typed = map[string]func(Event) error{
	modelfleet.EventModelRegistered: func(ev Event) error {
		r, err := DecodeModelRegistered(ev)
		if err == nil {
			err = r.Model.Validate()
		}
		return err
	},
	modelfleet.EventModelDeployed:        func(ev Event) error { _, err := DecodeModelDeployed(ev); return err },
	modelfleet.EventRunCompleted:         func(ev Event) error { _, err := DecodeRunCompleted(ev); return err },
	modelfleet.EventRunStatusChanged:     func(ev Event) error { _, err := DecodeRunStatusChanged(ev); return err },
	modelfleet.EventDatasetDriftDetected: func(ev Event) error { _, err := DecodeDatasetDriftDetected(ev); return err },
}

// Every sample decodes with its typed decoder, and every Azure ML type has
// samples in both schemas.
func TestCorpus(t *testing.T) {
	schemas := map[string]map[string]bool{}
	for name, evs := range corpus(t) {
		for i, ev := range evs {
			decode, ok := typed[ev.Type]
			if !ok {
				continue
			}
			if err := decode(ev); err != nil {
				t.Errorf("%s event[%d] (%s): %v", name, i, ev.Type, err)
			}
			if schemas[ev.Type] == nil {
				schemas[ev.Type] = map[string]bool{}
			}
			schemas[ev.Type][ev.Schema] = true
		}
	}
	for typ := range typed {
		if !schemas[typ][SchemaEventGrid] || !schemas[typ][SchemaCloudEvents] {
			t.Errorf("%s: samples in schemas %v, want both", typ, schemas[typ])
		}
	}
}

// addDataSeeds seeds a typed decoder's fuzzer with the data of every sample
// event (of every type) and some malformed data.
func addDataSeeds(f *testing.F) {
	for _, evs := range corpus(f) {
		for _, ev := range evs {
			f.Add([]byte(ev.Data))
		}
	}
	for _, s := range []string{"", "null", "[]", "{}", `"x"`, `{"modelName":1}`, `{"runTags":[]}`,
		`{"runId":"r","runTags":{"modelfleet.retrain":"../x"}}`, `{"dataDriftId":"d","driftCoefficient":"high"}`,
		`{"ModelName":"a","modelName":"b","ModelVersion":1e400}`, `{"modelIds":"a,b:1,:2"}`} {
		f.Add([]byte(s))
	}
}

// fuzzTyped checks a typed decoder never panics and fails only with a
// message-bearing EINVALID.
func fuzzTyped(f *testing.F, typ string) {
	addDataSeeds(f)
	decode := typed[typ]
	f.Fuzz(func(t *testing.T, data []byte) {
		err := decode(Event{ID: "e", Type: typ, Schema: SchemaEventGrid, Data: data})
		if err == nil {
			return
		}
		if code := modelfleet.ErrorCode(err); code != modelfleet.EINVALID || modelfleet.ErrorMessage(err) == "" {
			t.Errorf("error %q (code %q), want an invalid error with a message", err, code)
		}
	})
}

func FuzzDecodeModelRegistered(f *testing.F) { fuzzTyped(f, modelfleet.EventModelRegistered) }
func FuzzDecodeModelDeployed(f *testing.F)   { fuzzTyped(f, modelfleet.EventModelDeployed) }
func FuzzDecodeRunCompleted(f *testing.F)    { fuzzTyped(f, modelfleet.EventRunCompleted) }
func FuzzDecodeRunStatusChanged(f *testing.F) {
	fuzzTyped(f, modelfleet.EventRunStatusChanged)
}
func FuzzDecodeDatasetDriftDetected(f *testing.F) {
	fuzzTyped(f, modelfleet.EventDatasetDriftDetected)
}

// FuzzFromCloudEvent feeds what a namespace could deliver through the SDK's
// CloudEvent decoding, the pull conversion and the Temporal dispatcher's
// routing: a pulled event is acknowledged, released or rejected, never a
// panic, and only an EINVALID error rejects it.
func FuzzFromCloudEvent(f *testing.F) {
	for name, evs := range corpus(f) {
		if !strings.HasPrefix(name, "cloudevent") {
			continue
		}
		raw := load(f, name)
		var arr []json.RawMessage
		if json.Unmarshal(raw, &arr) != nil {
			arr = []json.RawMessage{raw}
		}
		for i := range evs {
			f.Add([]byte(arr[i]))
		}
	}
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"T","data_base64":"AAEC"}`))
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"Microsoft.MachineLearningServices.RunStatusChanged","data":{"runId":"r","runStatus":"Failed","runTags":{"azureml_modelmonitor_threshold_breached":"The signal 'a--b' has failed"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		d := &TemporalDispatcher{Orchestrator: &orchestratortest.Fake{}, Logger: quietLogger()}
		var ce messaging.CloudEvent
		if ce.UnmarshalJSON(body) != nil {
			return // the SDK fails the whole receive: nothing to settle
		}
		ev, err := FromCloudEvent(ce)
		if err != nil {
			if modelfleet.ErrorCode(err) != modelfleet.EINVALID {
				t.Fatalf("FromCloudEvent error %v is not invalid", err)
			}
			return
		}
		if ev.ID == "" || ev.Type == "" || ev.Source == "" {
			t.Errorf("event %+v lacks id, type or source", ev)
		}
		if ev.Data != nil && !json.Valid(ev.Data) {
			t.Errorf("data %q is not JSON", ev.Data)
		}
		if err := d.Dispatch(context.Background(), ev); err != nil && modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Errorf("Dispatch = %v, want nil or invalid", err)
		}
	})
}
