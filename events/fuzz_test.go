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

	"github.com/modelfleet/modelfleet"
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
