package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxScoreBody is the largest score request body accepted. A feature row is a
// few hundred bytes; the limit only stops a client from filling memory.
const MaxScoreBody = 64 << 10

// Error codes the router uses besides the domain's.
const (
	codeMethodNotAllowed = "method_not_allowed"
	codeNotReady         = "not_ready"
)

// scoreResponse is the body of a successful score request. The request
// path does not encode it with encoding/json but appends the same bytes
// (writeScore); a test holds the two equal.
type scoreResponse struct {
	Model      string  `json:"model"`
	Version    string  `json:"version"`
	Prediction float64 `json:"prediction"`
	// Label is the class answered: for a binary model 1 from probability
	// 0.5, for a multiclass one the prediction itself. A regressor's
	// response has none.
	Label *int `json:"label,omitempty"`
	// Probabilities are a multiclass model's, one per class.
	Probabilities []float64 `json:"probabilities,omitempty"`
	Site          string    `json:"site"`
	// Shadow is true only for a request pinned to a shadow version: normal
	// traffic is always answered by a version that takes traffic.
	Shadow bool `json:"shadow"`
}

// Handler serves the router's HTTP API:
//
//	POST /score/{model}  score a feature row (JSON object)
//	POST /feedback/{model}  the true label of an identified prediction
//	GET  /healthz        the process is alive
//	GET  /readyz         at least one model is loaded
//	GET  /api/models     the loaded model versions, with weights (any valid
//	                     key, when the router has keys)
//	GET  /metrics        Prometheus metrics
//	/v2/...              the Open Inference Protocol (v2.go)
//
// A score request may carry X-Modelfleet-Route-Key (sticky routing) or
// X-Modelfleet-Version (pin a loaded version); the response names the
// version that answered in X-Modelfleet-Version. Keys, when non-nil, is
// installed as the site-wide key set here.
func (r *Router) Handler() http.Handler {
	if r.Keys != nil {
		r.setKeys("", newKeySet(r.Keys))
	}
	return scoreFirst{r, r.mux()}
}

// scoreFirst serves score requests without the mux's pattern matching,
// which every one of them would pay, and the rest through the mux.
type scoreFirst struct {
	r   *Router
	mux *http.ServeMux
}

func (h scoreFirst) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if name, ok := scorePath(req.URL); ok {
		h.r.scoreModel(w, req, name)
		return
	}
	h.mux.ServeHTTP(w, req)
}

// scorePath returns the model of a score request's path when the mux
// would take it to /score/{model} as it is, with name as the model: a
// clean path of one segment after /score/, holding nothing escaped that
// unescaping would change (RawPath is empty then). Anything else (an
// escaped slash, a dot segment, a path to clean or redirect) is the mux's.
func scorePath(u *url.URL) (name string, ok bool) {
	name, ok = strings.CutPrefix(u.Path, "/score/")
	if !ok || u.RawPath != "" || name == "" || name == "." || name == ".." || strings.IndexByte(name, '/') >= 0 {
		return "", false
	}
	return name, true
}

// mux is the router's API without scoreFirst in front.
func (r *Router) mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/score/{model}", r.score)
	mux.HandleFunc("/feedback/{model}", r.postFeedback)
	mux.Handle("/healthz", onlyGet(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})))
	mux.Handle("/readyz", onlyGet(http.HandlerFunc(r.readyz)))
	mux.Handle("/api/models", onlyGet(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// The list names every model: any valid key, site-wide or a
		// model's, may read it; without one nothing is said.
		if !r.table.Load().keys.allowsAny(req.Header.Get("Authorization")) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="modelfleet-edge"`)
			writeError(w, http.StatusUnauthorized, modelfleet.EUNAUTHORIZED, "a valid API key is required: send \"Authorization: Bearer <key>\"")
			return
		}
		writeJSON(w, http.StatusOK, r.served())
	})))
	r.v2Routes(mux)
	mux.Handle("/metrics", onlyGet(promhttp.HandlerFor(r.metrics.reg, promhttp.HandlerOpts{Registry: r.metrics.reg})))
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		writeError(w, http.StatusNotFound, modelfleet.ENOTFOUND, fmt.Sprintf("no route for %q", req.URL.Path))
	})
	return mux
}

// score answers POST /score/{model}. It reads one table pointer and takes
// no lock; its allocations are the body, the feature row and what the
// vectorizer needs.
func (r *Router) score(w http.ResponseWriter, req *http.Request) {
	r.scoreModel(w, req, req.PathValue("model"))
}

// scoreModel is score of the model name.
func (r *Router) scoreModel(w http.ResponseWriter, req *http.Request, name string) {
	start := time.Now()
	t := r.table.Load()
	rt := t.routes[name]
	pinned := header(req.Header, HeaderVersion)
	var a *arm
	switch {
	case rt == nil:
	case pinned != "":
		a = rt.version(pinned)
	default:
		a = rt.pick(header(req.Header, HeaderRouteKey))
	}

	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		r.fail(w, rt, a, start, http.StatusMethodNotAllowed, codeMethodNotAllowed, fmt.Sprintf("method %s is not allowed: use POST", req.Method))
		return
	}
	// Authenticate before saying anything about which models or versions exist.
	if !t.keys.allows(name, rt != nil, header(req.Header, "Authorization")) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="modelfleet-edge"`)
		r.fail(w, rt, a, start, http.StatusUnauthorized, modelfleet.EUNAUTHORIZED, "a valid API key is required: send \"Authorization: Bearer <key>\"")
		return
	}
	if rt == nil {
		r.fail(w, rt, a, start, http.StatusNotFound, modelfleet.ENOTFOUND, fmt.Sprintf("model %q is not served at site %q; served: %s", name, r.Site, quoteList(r.names())))
		return
	}
	if a == nil {
		r.fail(w, rt, a, start, http.StatusNotFound, modelfleet.ENOTFOUND, fmt.Sprintf("version %q of model %q is not loaded at site %q; loaded: %s", pinned, name, r.Site, rt.loaded))
		return
	}
	w.Header()[HeaderVersion] = a.version
	if req.ContentLength > MaxScoreBody {
		r.fail(w, rt, a, start, http.StatusRequestEntityTooLarge, modelfleet.ETOOLARGE, fmt.Sprintf("request body is larger than %d bytes", MaxScoreBody))
		return
	}
	buf, body, err := readBody(w, req.Body, MaxScoreBody)
	// The body's buffer goes back to the pool when the request is done
	// with it, unless a shadow job kept it.
	keep := false
	defer func() {
		if !keep {
			putBody(buf, body)
		}
	}()
	if err != nil {
		// Declared here: errors.As makes it escape, an allocation per request.
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			r.fail(w, rt, a, start, http.StatusRequestEntityTooLarge, modelfleet.ETOOLARGE, fmt.Sprintf("request body is larger than %d bytes", MaxScoreBody))
			r.observeFailed(a, modelfleet.ETOOLARGE, start)
			return
		}
		r.fail(w, rt, a, start, http.StatusBadRequest, modelfleet.EINVALID, fmt.Sprintf("reading request body: %v", err))
		r.observeFailed(a, modelfleet.EINVALID, start)
		return
	}
	x, err := r.vectorize(a.Features, body)
	if err != nil {
		r.fail(w, rt, a, start, http.StatusBadRequest, modelfleet.EINVALID, err.Error())
		r.observeRejected(a, body, start)
		return
	}
	p, probs, err := r.predict(a, x)
	if err != nil {
		r.log.Error("edge: score", "model", a.Model.String(), "err", err)
		r.fail(w, rt, a, start, http.StatusInternalServerError, modelfleet.EINTERNAL, fmt.Sprintf("model %s failed to score the request", a.Model))
		r.observeFailed(a, modelfleet.EINTERNAL, start)
		return
	}
	label := a.labelOf(p)
	writeScore(w, a, p, label, probs)
	r.remember(req, name, a, label, p)
	took := time.Since(start)
	a.m.ok.Inc()
	a.m.latency.Observe(took.Seconds())
	a.m.predictions.Observe(a.shiftPoint(p))
	// The observer and the shadows: queued, done a batch at a time (post.go).
	keep = r.queuePost(w, rt, a, x, p, label, took, buf, body)
}

// header is the first value of a header whose name is in canonical form
// (the constants of this package are), as Header.Get returns it, without
// canonicalising the name again on every request.
func header(h http.Header, canonical string) string {
	if v := h[canonical]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// bodyBufs are score request bodies' buffers, reused: a body is read,
// vectorised and forgotten, unless a shadow version declaring other
// features decodes it later (then its buffer is not put back).
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledBody is the largest buffer put back in bodyBufs: a rare large
// body does not stay in every pool.
const maxPooledBody = 8 << 10

// readBody reads a request body of at most limit bytes, as
// io.ReadAll(http.MaxBytesReader(w, body, limit)) does (the same bytes and
// errors; a body over the limit closes the connection after the
// response), into a pooled buffer: putBody(buf, b) returns it.
func readBody(w http.ResponseWriter, body io.ReadCloser, limit int64) (buf *[]byte, b []byte, err error) {
	buf = bodyBufs.Get().(*[]byte)
	b = (*buf)[:0]
	rd := http.MaxBytesReader(w, body, limit)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow, as io.ReadAll does
		}
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return buf, b, err
		}
	}
}

// putBody returns a body's buffer to the pool.
func putBody(buf *[]byte, b []byte) {
	if cap(b) > maxPooledBody {
		return
	}
	*buf = b[:0]
	bodyBufs.Put(buf)
}

// fail answers a score request with an error and counts it. The version
// label is the one picked, if any: a pinned version that is not loaded is
// not a label, as anyone could fill the registry with made-up ones.
func (r *Router) fail(w http.ResponseWriter, rt *route, a *arm, start time.Time, status int, code, msg string) {
	writeError(w, status, code, msg)
	r.count(rt, a, start, code)
}

// count counts a failed request of route rt (nil: not served) answered by
// a (nil: none picked) under the error code.
func (r *Router) count(rt *route, a *arm, start time.Time, code string) {
	model, version := unknownModel, ""
	if rt != nil {
		model = rt.name
	}
	if a != nil {
		version = a.Model.Version
	}
	r.metrics.requests.WithLabelValues(model, version, code).Inc()
	if a != nil {
		a.m.latency.Observe(time.Since(start).Seconds())
	}
}

// predict guards the Scorer: a row of the wrong length may panic in a runtime
// that trusts its caller, and a non-finite result cannot even be encoded.
// For a multiclass model it returns the class probabilities too, and the
// most probable class (the first on a tie) as the prediction.
func (r *Router) predict(a *arm, x []float64) (p float64, probs []float64, err error) {
	m := a.LoadedModel
	defer func() {
		if v := recover(); v != nil {
			p, probs, err = 0, nil, fmt.Errorf("model %s panicked: %v", m.Model, v)
		}
	}()
	if n := m.Scorer.NumFeatures(); len(x) != n {
		return 0, nil, fmt.Errorf("vectorizer returned %d values, model %s expects %d", len(x), m.Model, n)
	}
	if a.task == modelfleet.TaskMulticlass {
		if probs, err = m.Scorer.Probabilities(x, nil); err != nil {
			return 0, nil, err
		}
		if len(probs) != a.classes {
			return 0, nil, fmt.Errorf("model %s returned %d probabilities for %d classes", m.Model, len(probs), a.classes)
		}
		best := 0
		for i, q := range probs {
			if math.IsNaN(q) || math.IsInf(q, 0) {
				return 0, nil, fmt.Errorf("model %s returned a non-finite probability %v", m.Model, q)
			}
			if q > probs[best] {
				best = i
			}
		}
		return float64(best), probs, nil
	}
	p, err = m.Scorer.Predict(x)
	if err != nil {
		return 0, nil, err
	}
	if math.IsNaN(p) || math.IsInf(p, 0) {
		return 0, nil, fmt.Errorf("model %s returned a non-finite prediction %v", m.Model, p)
	}
	return p, nil, nil
}

func (r *Router) readyz(w http.ResponseWriter, _ *http.Request) {
	n := countVersions(r.table.Load().routes)
	if n == 0 {
		writeError(w, http.StatusServiceUnavailable, codeNotReady, fmt.Sprintf("no model is loaded at site %q yet", r.Site))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "models": n})
}

func onlyGet(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, fmt.Sprintf("method %s is not allowed: use GET", req.Method))
			return
		}
		h.ServeHTTP(w, req)
	})
}

func quoteList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
