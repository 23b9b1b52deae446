package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/httpjson"
)

// SendRequest is the JSON body of POST /api/queues/{name}/messages. Body is
// base64 (standard, padded), which is how encoding/json writes a []byte: it
// carries any payload byte for byte, so what a consumer receives is exactly
// what the agent sent, JSON or not.
type SendRequest struct {
	ID          string            `json:"id"`
	Body        []byte            `json:"body"`
	ContentType string            `json:"contentType,omitempty"`
	Properties  map[string]string `json:"properties,omitempty"`
}

// SendResponse answers a send. A duplicate is answered the same way: as in
// Service Bus, the sender is not told.
type SendResponse struct {
	ID string `json:"id"`
}

// RedriveResponse answers a redrive.
type RedriveResponse struct {
	Redriven int `json:"redriven"`
}

// defaultPeek is how many messages a peek without max returns.
const defaultPeek = 10

// Handler serves the queue's admin API and its HTTP send endpoint; see
// NewHandler.
func (q *Queue) Handler() http.Handler { return NewHandler(q) }

// NewHandler serves the given queues, each under its name:
//
//	GET  /api/queues/{name}/stats                                  200 Stats
//	GET  /api/queues/{name}/messages?from=&max=&deadletter=true    200 []PeekedMessage (max default 10, at most 100)
//	POST /api/queues/{name}/messages                               201 SendResponse; body SendRequest
//	POST /api/queues/{name}/redrive?max=                           200 RedriveResponse (max default: all)
//
// Errors are {"error": code, "message": ...}: 400 invalid input, 404 unknown
// queue or path, 405 wrong method, 413 oversize message or body, 500
// internal (details only in the log). Two queues with one name panic here,
// as conflicting http.ServeMux patterns do.
func NewHandler(queues ...Store) http.Handler { return NewStampingHandler(nil, queues...) }

// Stamp inspects and may amend each message an HTTP sender sends before it
// is enqueued (the gateway stamps the site the sender's certificate names);
// an error refuses the send, with its code.
type Stamp func(r *http.Request, m *Message) error

// NewStampingHandler is NewHandler with sends passed through stamp.
func NewStampingHandler(stamp Stamp, queues ...Store) http.Handler {
	h := &handler{queues: map[string]Store{}, stamp: stamp}
	for _, q := range queues {
		if h.queues[q.Name()] != nil {
			panic(fmt.Sprintf("queue: NewHandler: two queues named %q", q.Name()))
		}
		h.queues[q.Name()] = q
	}
	mux := http.NewServeMux()
	mux.Handle("/api/queues/{name}/stats", h.methods(routes{http.MethodGet: h.stats}))
	mux.Handle("/api/queues/{name}/messages", h.methods(routes{http.MethodGet: h.peek, http.MethodPost: h.send}))
	mux.Handle("/api/queues/{name}/redrive", h.methods(routes{http.MethodPost: h.redrive}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, nil, modelfleet.Errorf(modelfleet.ENOTFOUND, "no such path %q", r.URL.Path))
	})
	return mux
}

type handler struct {
	stamp  Stamp
	queues map[string]Store
}

type routes map[string]func(http.ResponseWriter, *http.Request, Store)

// methods dispatches on the method and resolves the queue, so that a wrong
// method is a JSON 405 and an unknown queue a JSON 404.
func (h *handler) methods(rs routes) http.Handler {
	allowed := slices.Sorted(maps.Keys(rs))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fn := rs[r.Method]
		if fn == nil {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeJSON(w, http.StatusMethodNotAllowed, httpjson.ErrorBody{
				Error:   modelfleet.EINVALID,
				Message: fmt.Sprintf("method %s is not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(allowed, " or ")),
			})
			return
		}
		q := h.queues[r.PathValue("name")]
		if q == nil {
			writeError(w, r, nil, modelfleet.Errorf(modelfleet.ENOTFOUND, "queue %q not found", r.PathValue("name")))
			return
		}
		fn(w, r, q)
	})
}

func (h *handler) stats(w http.ResponseWriter, r *http.Request, q Store) {
	s, err := q.Stats()
	if err != nil {
		writeError(w, r, q, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (h *handler) peek(w http.ResponseWriter, r *http.Request, q Store) {
	qs := r.URL.Query()
	from, err := intParam(qs.Get("from"), "from", 0)
	if err != nil {
		writeError(w, r, q, err)
		return
	}
	max, err := intParam(qs.Get("max"), "max", defaultPeek)
	if err != nil {
		writeError(w, r, q, err)
		return
	}
	dead := false
	if v := qs.Get("deadletter"); v != "" {
		if dead, err = strconv.ParseBool(v); err != nil {
			writeError(w, r, q, modelfleet.Errorf(modelfleet.EINVALID, "deadletter %q is not a boolean", v))
			return
		}
	}
	if max > math.MaxInt {
		max = math.MaxInt
	}
	ms, err := q.Peek(from, int(max), dead)
	if err != nil {
		writeError(w, r, q, err)
		return
	}
	writeJSON(w, http.StatusOK, ms)
}

func (h *handler) send(w http.ResponseWriter, r *http.Request, q Store) {
	m, err := decodeSend(w, r, q.options().MaxMessageBytes)
	if err == nil && h.stamp != nil {
		err = h.stamp(r, &m)
	}
	if err == nil {
		err = q.Send(r.Context(), m)
	}
	if err != nil {
		writeError(w, r, q, err)
		return
	}
	writeJSON(w, http.StatusCreated, SendResponse{ID: m.ID})
}

// decodeSend reads a SendRequest, bounded for a queue whose messages are at
// most maxMessageBytes.
func decodeSend(w http.ResponseWriter, r *http.Request, maxMessageBytes int) (Message, error) {
	// Base64 grows the body by a third; the rest is room for the envelope
	// and escaped properties. Send itself enforces the exact limit.
	limit := int64(maxMessageBytes)*2 + 64<<10
	var req SendRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return Message{}, modelfleet.Errorf(modelfleet.ETOOLARGE, "request body exceeds %d bytes", limit)
		}
		return Message{}, modelfleet.Errorf(modelfleet.EINVALID, "request body is not a valid message: %v (want {\"id\", \"body\" (base64), \"contentType\", \"properties\"})", err)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		return Message{}, modelfleet.Errorf(modelfleet.EINVALID, "request body has trailing data after the JSON object")
	}
	return Message{ID: req.ID, Body: req.Body, ContentType: req.ContentType, Properties: req.Properties}, nil
}

// Relay serves POST /api/queues/{Name}/messages for a queue kept elsewhere
// (Service Bus): each message is decoded and bounded as NewHandler does,
// passed through Stamp, and sent to To with the relay's own credential, so
// senders hold none. Every other path is 404: stats, peek and redrive
// belong to the broker's own tools.
type Relay struct {
	Name  string
	Stamp Stamp // nil: messages are relayed as sent
	To    Sender
	// MaxMessageBytes is To's limit. Default DefaultMaxMessageBytes.
	MaxMessageBytes int
	// Logger gets failed relays (their details never reach the sender).
	// Default slog.Default().
	Logger *slog.Logger
}

// ServeHTTP implements http.Handler.
func (rl *Relay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/api/queues/")
	name, ok2 := strings.CutSuffix(name, "/messages")
	if !ok || !ok2 || strings.Contains(name, "/") {
		httpjson.WriteError(w, modelfleet.Errorf(modelfleet.ENOTFOUND, "no such path %q: this gateway relays signal messages to Service Bus and keeps no queue", r.URL.Path))
		return
	}
	if name != rl.Name {
		httpjson.WriteError(w, modelfleet.Errorf(modelfleet.ENOTFOUND, "queue %q not found", name))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, httpjson.ErrorBody{Error: modelfleet.EINVALID, Message: fmt.Sprintf("method %s is not allowed on %s: this gateway relays sends only", r.Method, r.URL.Path)})
		return
	}
	limit := orDefault(rl.MaxMessageBytes, DefaultMaxMessageBytes)
	m, err := decodeSend(w, r, limit)
	if err == nil && rl.Stamp != nil {
		err = rl.Stamp(r, &m)
	}
	if err == nil {
		// Checked here too, so an invalid message is refused with the
		// embedded queue's code whatever the broker would say.
		err = checkMessage(m, limit)
	}
	if err == nil {
		err = rl.To.Send(r.Context(), m)
	}
	if err != nil {
		if modelfleet.ErrorCode(err) == modelfleet.EINTERNAL || modelfleet.ErrorCode(err) == modelfleet.EUNAUTHORIZED {
			// The relay's own credential or the broker failed: the
			// sender retries; the operator must know.
			log := rl.Logger
			if log == nil {
				log = slog.Default()
			}
			log.Error("relay to the queue failed", "queue", rl.Name, "message_id", m.ID, "err", err)
			err = fmt.Errorf("relay: %w", errors.New("the queue is unavailable"))
		}
		httpjson.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, SendResponse{ID: m.ID})
}

func (h *handler) redrive(w http.ResponseWriter, r *http.Request, q Store) {
	max, err := intParam(r.URL.Query().Get("max"), "max", math.MaxInt)
	if err != nil {
		writeError(w, r, q, err)
		return
	}
	n, err := q.Redrive(r.Context(), int(min(max, math.MaxInt)))
	if err != nil {
		writeError(w, r, q, err)
		return
	}
	writeJSON(w, http.StatusOK, RedriveResponse{Redriven: n})
}

// intParam parses a non-negative query parameter, def when absent.
func intParam(v, name string, def int64) (int64, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, modelfleet.Errorf(modelfleet.EINVALID, "%s %q is not a non-negative integer", name, v)
	}
	return n, nil
}

// writeError writes err with the status its code maps to. Internal errors
// are logged (to q's logger when there is a queue) and never leak details.
func writeError(w http.ResponseWriter, r *http.Request, q Store, err error) {
	if modelfleet.ErrorCode(err) == modelfleet.EINTERNAL && q != nil {
		q.options().Logger.Error("queue request failed", "queue", q.Name(), "method", r.Method, "path", r.URL.Path, "err", err)
	}
	httpjson.WriteError(w, err)
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }
