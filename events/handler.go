package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/azsystemevents"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/modelfleet/modelfleet"
)

// Dispatcher applies one event's effect (start or signal a workflow). It
// returns only after the effect is durable (Temporal accepted the start), so
// the handler can acknowledge. An error with code modelfleet.EINVALID means
// the event can never succeed (the handler answers 400); any other error is
// taken as transient (503, Event Grid retries). Dispatch must be idempotent
// and safe for concurrent use.
type Dispatcher interface {
	Dispatch(ctx context.Context, ev Event) error
}

// DispatcherFunc adapts a function to Dispatcher.
type DispatcherFunc func(ctx context.Context, ev Event) error

// Dispatch calls f.
func (f DispatcherFunc) Dispatch(ctx context.Context, ev Event) error { return f(ctx, ev) }

// DefaultMaxBodyBytes is the default request body limit, 1 MiB: Event Grid
// caps one event at 1 MB and a subscription's preferred batch size at
// 1,024 KB, and Azure ML events are about 1 KB, so anything larger is not
// Event Grid's. Event Grid does not retry a 413 (it dead-letters): keep a
// batching subscription's preferred batch size below this limit.
const DefaultMaxBodyBytes = 1 << 20

// HandlerOptions configure NewHandler; the zero value is usable.
type HandlerOptions struct {
	MaxBodyBytes   int64                 // default DefaultMaxBodyBytes
	Logger         *slog.Logger          // default slog.Default()
	Registerer     prometheus.Registerer // nil: metrics are kept but not registered
	TracerProvider trace.TracerProvider  // default otel.GetTracerProvider()
	// Concurrency bounds the events of one delivery dispatched at once
	// (default 8): a batch of 5,000 dispatched one by one would outlast
	// Event Grid's 30 s wait.
	Concurrency int
	// Timeout bounds the dispatch of one delivery (default 25 s, under
	// Event Grid's 30 s wait, so it hears 503 rather than nothing).
	Timeout time.Duration
}

// NewHandler returns the webhook for Event Grid: POST delivers events,
// OPTIONS answers the CloudEvents abuse-protection handshake. It serves
// whatever request it is given, whatever the path it is mounted at.
func NewHandler(d Dispatcher, opts HandlerOptions) http.Handler {
	h := &handler{d: d, opts: opts, metrics: newHandlerMetrics(opts.Registerer)}
	if h.opts.MaxBodyBytes <= 0 {
		h.opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if h.opts.Logger == nil {
		h.opts.Logger = slog.Default()
	}
	if h.opts.TracerProvider == nil {
		h.opts.TracerProvider = otel.GetTracerProvider()
	}
	if h.opts.Concurrency <= 0 {
		h.opts.Concurrency = 8
	}
	if h.opts.Timeout <= 0 {
		h.opts.Timeout = 25 * time.Second
	}
	return h
}

type handler struct {
	d       Dispatcher
	opts    HandlerOptions
	metrics handlerMetrics
}

// maxSpanIDs bounds the event ids recorded on a delivery's span.
const maxSpanIDs = 100

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		h.handshake(w, r)
		return
	default:
		w.Header().Set("Allow", "OPTIONS, POST")
		writeError(w, http.StatusMethodNotAllowed, modelfleet.Errorf(modelfleet.EINVALID, "method %s is not allowed: use POST or OPTIONS", clip(r.Method)))
		return
	}
	ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := h.opts.TracerProvider.Tracer("modelfleet/events").Start(ctx, "eventgrid.delivery", trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	status := h.deliver(ctx, w, r, span)
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status != http.StatusOK {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	h.metrics.deliveries.WithLabelValues(fmt.Sprint(status)).Inc()
}

// handshake answers the CloudEvents webhook validation (abuse protection)
// that Event Grid performs for CloudEvents subscriptions: any origin may
// deliver (the endpoint's own authentication decides who is trusted), at any
// rate.
func (h *handler) handshake(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "OPTIONS, POST")
	if origin := r.Header.Get("WebHook-Request-Origin"); origin != "" {
		w.Header().Set("WebHook-Allowed-Origin", origin)
		if r.Header.Get("WebHook-Request-Rate") != "" {
			w.Header().Set("WebHook-Allowed-Rate", "*")
		}
		h.opts.Logger.Info("cloudevents webhook handshake", "origin", clip(origin))
	}
	w.WriteHeader(http.StatusOK)
}

// deliver handles one POST and returns the status it answered.
func (h *handler) deliver(ctx context.Context, w http.ResponseWriter, r *http.Request, span trace.Span) int {
	log := h.opts.Logger
	ct := r.Header.Get("Content-Type")
	if _, err := mediaType(ct); err != nil {
		log.Warn("event delivery rejected", "status", http.StatusUnsupportedMediaType, "error", err)
		return writeError(w, http.StatusUnsupportedMediaType, err)
	}
	if r.ContentLength > h.opts.MaxBodyBytes {
		return h.tooLarge(w, r.ContentLength)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return h.tooLarge(w, -1)
		}
		log.Warn("event delivery: reading the body failed", "error", err)
		return writeError(w, http.StatusBadRequest, modelfleet.Errorf(modelfleet.EINVALID, "the body could not be read"))
	}
	evs, err := Decode(body, ct)
	if err != nil {
		status := http.StatusBadRequest
		switch {
		case errors.Is(err, ErrUnsupportedMediaType):
			status = http.StatusUnsupportedMediaType
		case modelfleet.ErrorCode(err) == modelfleet.ETOOLARGE:
			status = http.StatusRequestEntityTooLarge
		}
		log.Warn("event delivery rejected", "status", status, "bytes", len(body), "error", err)
		return writeError(w, status, err)
	}
	ids := make([]string, 0, min(len(evs), maxSpanIDs))
	for _, ev := range evs[:min(len(evs), maxSpanIDs)] {
		ids = append(ids, ev.ID)
	}
	span.SetAttributes(
		attribute.Int("messaging.batch.message_count", len(evs)),
		attribute.StringSlice("modelfleet.event.ids", ids),
	)
	for i, ev := range evs {
		if ev.Type == EventSubscriptionValidation {
			return h.validate(w, evs, i)
		}
	}
	return h.dispatch(ctx, w, evs)
}

func (h *handler) tooLarge(w http.ResponseWriter, n int64) int {
	h.opts.Logger.Warn("event delivery rejected: body too large", "status", http.StatusRequestEntityTooLarge, "content_length", n, "limit", h.opts.MaxBodyBytes)
	return writeError(w, http.StatusRequestEntityTooLarge, modelfleet.Errorf(modelfleet.ETOOLARGE, "the body is larger than %d bytes", h.opts.MaxBodyBytes))
}

// validate answers Event Grid's subscription validation with the code it
// sent. Event Grid sends that event alone; one in a batch with others is
// rejected rather than acknowledged, which would drop the others.
func (h *handler) validate(w http.ResponseWriter, evs []Event, i int) int {
	ev := evs[i]
	var d azsystemevents.SubscriptionValidationEventData
	var err error
	switch {
	case len(evs) != 1:
		err = fmt.Errorf("a subscription validation event must be delivered alone, not in a batch of %d", len(evs))
	case isNull(ev.Data):
		err = fmt.Errorf("SubscriptionValidationEvent data: missing")
	case d.UnmarshalJSON(ev.Data) != nil:
		err = fmt.Errorf("SubscriptionValidationEvent data is not a valid validation event")
	case d.ValidationCode == nil || *d.ValidationCode == "":
		err = fmt.Errorf("SubscriptionValidationEvent data: missing %q", "validationCode")
	}
	if err != nil {
		h.count(ev, "invalid")
		h.opts.Logger.Warn("subscription validation rejected", "event_id", clip(ev.ID), "error", err)
		return writeError(w, http.StatusBadRequest, modelfleet.Errorf(modelfleet.EINVALID, "event[%d] (id %q): %v", i, clip(ev.ID), err))
	}
	h.count(ev, "validated")
	// The code proves the subscription; it is not logged.
	h.opts.Logger.Info("event grid subscription validated", "event_id", clip(ev.ID), "topic", clip(ev.Source))
	return writeJSON(w, http.StatusOK, azsystemevents.SubscriptionValidationResponse{ValidationResponse: d.ValidationCode})
}

// dispatch hands every event to the Dispatcher, then answers: 503 if any
// failed transiently (the whole delivery is retried, and with it any
// invalid events, which fail again), else 400 if any was invalid (the valid
// ones have taken effect; Event Grid dead-letters the delivery), else 200.
func (h *handler) dispatch(ctx context.Context, w http.ResponseWriter, evs []Event) int {
	ctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	defer cancel()
	errs := make([]error, len(evs))
	sem := make(chan struct{}, h.opts.Concurrency)
	var wg sync.WaitGroup
	for i := range evs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = h.dispatchOne(ctx, evs[i])
		})
	}
	wg.Wait()

	var invalid []string
	failed := 0
	for i, err := range errs {
		ev := evs[i]
		log := h.opts.Logger.With("event_id", clip(ev.ID), "event_type", clip(ev.Type), "subject", clip(ev.Subject))
		switch {
		case err == nil:
			h.count(ev, "dispatched")
			log.Debug("event dispatched")
		case permanent(err):
			h.count(ev, "invalid")
			log.Warn("event rejected", "error", err)
			invalid = append(invalid, fmt.Sprintf("event[%d] (id %q): %s", i, clip(ev.ID), modelfleet.ErrorMessage(err)))
		default:
			h.count(ev, "failed")
			log.Error("event dispatch failed", "error", err)
			failed++
		}
	}
	switch {
	case failed > 0:
		return writeError(w, http.StatusServiceUnavailable, modelfleet.Errorf(modelfleet.EINTERNAL,
			"%d of %d events could not be dispatched; retry the delivery", failed, len(evs)))
	case len(invalid) > 0:
		msg := strings.Join(invalid[:min(len(invalid), 3)], "; ")
		if len(invalid) > 3 {
			msg += fmt.Sprintf("; and %d more", len(invalid)-3)
		}
		return writeError(w, http.StatusBadRequest, modelfleet.Errorf(modelfleet.EINVALID, "%s", msg))
	}
	return writeJSON(w, http.StatusOK, map[string]int{"dispatched": len(evs)})
}

// dispatchOne turns a Dispatcher's panic into a transient error: it runs on
// its own goroutine, where a panic would end the process.
func (h *handler) dispatchOne(ctx context.Context, ev Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			h.opts.Logger.Error("dispatcher panicked", "event_id", clip(ev.ID), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("dispatcher panicked: %v", p)
		}
	}()
	return h.d.Dispatch(ctx, ev)
}

// permanent reports whether retrying the event cannot help.
func permanent(err error) bool {
	switch modelfleet.ErrorCode(err) {
	case modelfleet.EINVALID, modelfleet.ETOOLARGE:
		return true
	}
	return false
}

func (h *handler) count(ev Event, outcome string) {
	h.metrics.events.WithLabelValues(typeLabel(ev.Type), outcome).Inc()
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error   string `json:"error"`   // a modelfleet error code
	Message string `json:"message"` // what is wrong, for the sender
}

func writeError(w http.ResponseWriter, status int, err error) int {
	return writeJSON(w, status, errorBody{Error: modelfleet.ErrorCode(err), Message: modelfleet.ErrorMessage(err)})
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal","message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return status
}
