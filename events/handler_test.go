package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/modelfleet/modelfleet"
)

// fakeDispatcher records what it is given; fail decides each event's error.
type fakeDispatcher struct {
	mu    sync.Mutex
	evs   []Event
	spans []trace.SpanContext
	fail  func(Event) error
}

func (f *fakeDispatcher) Dispatch(ctx context.Context, ev Event) error {
	f.mu.Lock()
	f.evs = append(f.evs, ev)
	f.spans = append(f.spans, trace.SpanContextFromContext(ctx))
	f.mu.Unlock()
	if f.fail != nil {
		return f.fail(ev)
	}
	return nil
}

func (f *fakeDispatcher) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for _, ev := range f.evs {
		ids = append(ids, ev.ID)
	}
	slices.Sort(ids)
	return ids
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func post(h http.Handler, contentType string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/api/events", bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// decodeBody checks the answer is JSON and returns it.
func decodeBody(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if got, want := w.Header().Get("Content-Type"), "application/json"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", w.Body, err)
	}
	return m
}

func TestHandlerDelivers(t *testing.T) {
	tests := []struct {
		file, contentType string
		ids               []string
	}{
		{"eventgrid_model_registered.json", ctJSON, []string{"3b73ee51-bbf4-480d-9112-cfc23b41bfdb"}},
		{"cloudevents_model_registered_sample.json", ctCloudBatch, []string{"831e1650-001e-001b-66ab-eeb76e069631"}},
		{"cloudevent_model_registered.json", ctCloud, []string{"9d0f3a5e-5b1e-4c4b-8f57-2f0b6c9d1e21"}},
		// Unknown types reach the dispatcher too: it decides.
		{"eventgrid_batch.json", ctJSON, []string{"batch-1", "batch-2", "batch-3"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			d := &fakeDispatcher{}
			w := post(NewHandler(d, HandlerOptions{Logger: quietLogger()}), tt.contentType, load(t, tt.file))
			if got, want := w.Code, http.StatusOK; got != want {
				t.Fatalf("status = %d, want %d (%s)", got, want, w.Body)
			}
			if got, want := decodeBody(t, w)["dispatched"], float64(len(tt.ids)); got != want {
				t.Errorf("dispatched = %v, want %v", got, want)
			}
			if got, want := d.ids(), tt.ids; !slices.Equal(got, want) {
				t.Errorf("dispatched ids = %v, want %v", got, want)
			}
		})
	}
}

func TestHandlerSubscriptionValidation(t *testing.T) {
	d := &fakeDispatcher{}
	h := NewHandler(d, HandlerOptions{Logger: quietLogger()})
	w := post(h, ctJSON, load(t, "subscription_validation.json"))
	if got, want := w.Code, http.StatusOK; got != want {
		t.Fatalf("status = %d, want %d (%s)", got, want, w.Body)
	}
	if got, want := strings.TrimSpace(w.Body.String()), `{"validationResponse":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}`; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
	if got := d.ids(); len(got) != 0 {
		t.Errorf("dispatched %v, want nothing", got)
	}

	bad := map[string]string{
		"without a code":    `[{"id":"v","subject":"","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","eventTime":"2026-01-01T00:00:00Z","data":{"validationUrl":"https://x"}}]`,
		"without data":      `[{"id":"v","subject":"","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","eventTime":"2026-01-01T00:00:00Z"}]`,
		"code not a string": `[{"id":"v","subject":"","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","eventTime":"2026-01-01T00:00:00Z","data":{"validationCode":1}}]`,
		"in a batch": `[{"id":"a","subject":"s","eventType":"T","eventTime":"2026-01-01T00:00:00Z"},` +
			`{"id":"v","subject":"","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","eventTime":"2026-01-01T00:00:00Z","data":{"validationCode":"c"}}]`,
	}
	for name, body := range bad {
		t.Run(name, func(t *testing.T) {
			w := post(h, ctJSON, []byte(body))
			if got, want := w.Code, http.StatusBadRequest; got != want {
				t.Fatalf("status = %d, want %d (%s)", got, want, w.Body)
			}
			if got, want := decodeBody(t, w)["error"], modelfleet.EINVALID; got != want {
				t.Errorf("error = %v, want %q", got, want)
			}
		})
	}
	if got := d.ids(); len(got) != 0 {
		t.Errorf("dispatched %v, want nothing", got)
	}
}

func TestHandlerCloudEventsHandshake(t *testing.T) {
	tests := []struct {
		name                 string
		origin, rate         string
		wantOrigin, wantRate string
	}{
		{"origin and rate", "eventgrid.azure.net", "120", "eventgrid.azure.net", "*"},
		{"origin only", "eventgrid.azure.net", "", "eventgrid.azure.net", ""},
		{"not a handshake", "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDispatcher{}
			r := httptest.NewRequest(http.MethodOptions, "/hooks/azure", nil)
			if tt.origin != "" {
				r.Header.Set("WebHook-Request-Origin", tt.origin)
				r.Header.Set("WebHook-Request-Callback", "https://eventgrid.azure.net/validate?code=x")
			}
			if tt.rate != "" {
				r.Header.Set("WebHook-Request-Rate", tt.rate)
			}
			w := httptest.NewRecorder()
			NewHandler(d, HandlerOptions{Logger: quietLogger()}).ServeHTTP(w, r)
			if got, want := w.Code, http.StatusOK; got != want {
				t.Fatalf("status = %d, want %d", got, want)
			}
			if got, want := w.Header().Get("WebHook-Allowed-Origin"), tt.wantOrigin; got != want {
				t.Errorf("WebHook-Allowed-Origin = %q, want %q", got, want)
			}
			if got, want := w.Header().Get("WebHook-Allowed-Rate"), tt.wantRate; got != want {
				t.Errorf("WebHook-Allowed-Rate = %q, want %q", got, want)
			}
			if got, want := w.Header().Get("Allow"), "OPTIONS, POST"; got != want {
				t.Errorf("Allow = %q, want %q", got, want)
			}
		})
	}
}

func TestHandlerRejects(t *testing.T) {
	valid := load(t, "eventgrid_model_registered.json")
	big := append(append([]byte(`[{"id":"1","eventType":"T","subject":"s","eventTime":"2026-01-01T00:00:00Z","data":"`), bytes.Repeat([]byte("x"), 2048)...), `"}]`...)
	tests := []struct {
		name        string
		method      string
		contentType string
		body        []byte
		chunked     bool // hide the length, so the limit is found while reading
		status      int
		code, msg   string
	}{
		{"GET", http.MethodGet, ctJSON, nil, false, http.StatusMethodNotAllowed, modelfleet.EINVALID, "method GET is not allowed"},
		{"PUT", http.MethodPut, ctJSON, valid, false, http.StatusMethodNotAllowed, modelfleet.EINVALID, "use POST or OPTIONS"},
		{"too large by Content-Length", http.MethodPost, ctJSON, big, false, http.StatusRequestEntityTooLarge, modelfleet.ETOOLARGE, "larger than 1024 bytes"},
		{"too large while reading", http.MethodPost, ctJSON, big, true, http.StatusRequestEntityTooLarge, modelfleet.ETOOLARGE, "larger than 1024 bytes"},
		{"text/plain", http.MethodPost, "text/plain", valid, false, http.StatusUnsupportedMediaType, modelfleet.EINVALID, `content type "text/plain" is not supported`},
		{"not JSON", http.MethodPost, ctJSON, []byte("{"), false, http.StatusBadRequest, modelfleet.EINVALID, "not valid JSON"},
		{"empty", http.MethodPost, ctJSON, nil, false, http.StatusBadRequest, modelfleet.EINVALID, "the body is empty"},
		{"empty batch", http.MethodPost, ctJSON, []byte("[]"), false, http.StatusBadRequest, modelfleet.EINVALID, "no events"},
		{"missing eventType", http.MethodPost, ctJSON, []byte(`[{"id":"1","subject":"s","eventTime":"2026-01-01T00:00:00Z"}]`), false,
			http.StatusBadRequest, modelfleet.EINVALID, `event[0]: missing "eventType"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDispatcher{}
			h := NewHandler(d, HandlerOptions{Logger: quietLogger(), MaxBodyBytes: 1024})
			r := httptest.NewRequest(tt.method, "/api/events", bytes.NewReader(tt.body))
			r.Header.Set("Content-Type", tt.contentType)
			if tt.chunked {
				r.ContentLength = -1
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if got, want := w.Code, tt.status; got != want {
				t.Fatalf("status = %d, want %d (%s)", got, want, w.Body)
			}
			body := decodeBody(t, w)
			if got, want := body["error"], tt.code; got != want {
				t.Errorf("error = %v, want %q", got, want)
			}
			if got, _ := body["message"].(string); !strings.Contains(got, tt.msg) {
				t.Errorf("message = %q, want it to contain %q", got, tt.msg)
			}
			if got := d.ids(); len(got) != 0 {
				t.Errorf("dispatched %v, want nothing", got)
			}
			if tt.status == http.StatusMethodNotAllowed {
				if got, want := w.Header().Get("Allow"), "OPTIONS, POST"; got != want {
					t.Errorf("Allow = %q, want %q", got, want)
				}
			}
		})
	}
}

var errUnavailable = errors.New("temporal: unavailable")

func TestHandlerDispatchOutcomes(t *testing.T) {
	body := load(t, "eventgrid_batch.json") // batch-1, batch-2, batch-3
	tests := []struct {
		name   string
		fail   map[string]error
		panics bool
		status int
		msg    string
	}{
		{"all dispatched", nil, false, http.StatusOK, ""},
		{"one invalid", map[string]error{"batch-2": modelfleet.Errorf(modelfleet.EINVALID, `RunStatusChanged data: missing "runId"`)}, false,
			http.StatusBadRequest, `event[1] (id "batch-2"): RunStatusChanged data: missing "runId"`},
		{"one transient", map[string]error{"batch-3": errUnavailable}, false,
			http.StatusServiceUnavailable, "1 of 3 events could not be dispatched"},
		{"transient wins over invalid", map[string]error{"batch-1": modelfleet.Errorf(modelfleet.EINVALID, "bad"), "batch-3": errUnavailable}, false,
			http.StatusServiceUnavailable, "1 of 3 events could not be dispatched"},
		{"dispatcher panics", nil, true, http.StatusServiceUnavailable, "3 of 3 events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDispatcher{fail: func(ev Event) error {
				if tt.panics {
					panic("boom")
				}
				return tt.fail[ev.ID]
			}}
			w := post(NewHandler(d, HandlerOptions{Logger: quietLogger(), Concurrency: 2}), ctJSON, body)
			if got, want := w.Code, tt.status; got != want {
				t.Fatalf("status = %d, want %d (%s)", got, want, w.Body)
			}
			m := decodeBody(t, w)
			if got, _ := m["message"].(string); !strings.Contains(got, tt.msg) {
				t.Errorf("message = %q, want it to contain %q", got, tt.msg)
			}
			if strings.Contains(w.Body.String(), errUnavailable.Error()) {
				t.Errorf("body %s leaks the internal error", w.Body)
			}
			// Every event is dispatched, whatever happens to the others.
			if got, want := d.ids(), []string{"batch-1", "batch-2", "batch-3"}; !slices.Equal(got, want) {
				t.Errorf("dispatched %v, want %v", got, want)
			}
		})
	}
}

func TestHandlerTracesAndCounts(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reg := prometheus.NewRegistry()
	d := &fakeDispatcher{fail: func(ev Event) error {
		if ev.ID == "batch-2" {
			return modelfleet.Errorf(modelfleet.EINVALID, "bad")
		}
		return nil
	}}
	h := NewHandler(d, HandlerOptions{Logger: quietLogger(), Registerer: reg, TracerProvider: tp})
	if w := post(h, ctJSON, load(t, "eventgrid_batch.json")); w.Code != http.StatusBadRequest {
		t.Fatalf("status = %d, want 400", w.Code)
	}
	// A second handler on the same registry shares the counters.
	NewHandler(d, HandlerOptions{Registerer: reg})

	spans := rec.Ended()
	if got, want := len(spans), 1; got != want {
		t.Fatalf("spans = %d, want %d", got, want)
	}
	span := spans[0]
	if got, want := span.Name(), "eventgrid.delivery"; got != want {
		t.Errorf("span name = %q, want %q", got, want)
	}
	var ids []string
	for _, kv := range span.Attributes() {
		if kv.Key == "modelfleet.event.ids" {
			ids = kv.Value.AsStringSlice()
		}
	}
	if got, want := ids, []string{"batch-1", "batch-2", "batch-3"}; !slices.Equal(got, want) {
		t.Errorf("span event ids = %v, want %v", got, want)
	}
	for i, sc := range d.spans {
		if got, want := sc.SpanID(), span.SpanContext().SpanID(); got != want {
			t.Errorf("dispatch %d ran in span %s, want %s", i, got, want)
		}
	}

	counts := counters(t, reg, "modelfleet_events_received_total")
	for labels, want := range map[string]float64{
		modelfleet.EventModelRegistered + "/dispatched": 1,
		modelfleet.EventRunStatusChanged + "/invalid":   1,
		"other/dispatched": 1,
	} {
		if got := counts[labels]; got != want {
			t.Errorf("events_received_total{%s} = %v, want %v (all: %v)", labels, got, want, counts)
		}
	}
	if got, want := counters(t, reg, "modelfleet_event_deliveries_total")["400"], 1.0; got != want {
		t.Errorf("deliveries_total{400} = %v, want %v", got, want)
	}
}

// counters returns a counter family's values keyed by its label values
// joined with "/".
func counters(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var vals []string
			for _, l := range m.GetLabel() {
				vals = append(vals, l.GetValue())
			}
			// Labels come sorted by name: outcome before type; put type first.
			slices.Reverse(vals)
			out[strings.Join(vals, "/")] = m.GetCounter().GetValue()
		}
	}
	return out
}
