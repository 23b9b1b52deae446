package edge

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
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

// scoreResponse is the body of a successful score request.
type scoreResponse struct {
	Model      string  `json:"model"`
	Version    string  `json:"version"`
	Prediction float64 `json:"prediction"`
	Label      int     `json:"label"`
	Site       string  `json:"site"`
}

// Handler serves the router's HTTP API:
//
//	POST /score/{model}  score a feature row (JSON object)
//	GET  /healthz        the process is alive
//	GET  /readyz         at least one model is loaded
//	GET  /api/models     the served model versions
//	GET  /metrics        Prometheus metrics
//
// Keys is read here; changing it later has no effect on this handler.
func (r *Router) Handler() http.Handler {
	keys := newKeySet(r.Keys)
	mux := http.NewServeMux()
	mux.HandleFunc("/score/{model}", func(w http.ResponseWriter, req *http.Request) { r.score(w, req, keys) })
	mux.Handle("/healthz", onlyGet(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})))
	mux.Handle("/readyz", onlyGet(http.HandlerFunc(r.readyz)))
	mux.Handle("/api/models", onlyGet(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, r.Served())
	})))
	mux.Handle("/metrics", onlyGet(promhttp.HandlerFor(r.metrics.reg, promhttp.HandlerOpts{Registry: r.metrics.reg})))
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		writeError(w, http.StatusNotFound, modelfleet.ENOTFOUND, fmt.Sprintf("no route for %q", req.URL.Path))
	})
	return mux
}

func (r *Router) score(w http.ResponseWriter, req *http.Request, keys keySet) {
	start := time.Now()
	name := req.PathValue("model")
	m := r.current(name)
	model, version := unknownModel, ""
	if m != nil {
		model, version = m.Model.Name, m.Model.Version
	}
	outcome := "ok"
	defer func() {
		r.metrics.requests.WithLabelValues(model, version, outcome).Inc()
		if m != nil {
			r.metrics.latency.WithLabelValues(model, version).Observe(time.Since(start).Seconds())
		}
	}()
	fail := func(status int, code, msg string) {
		outcome = code
		writeError(w, status, code, msg)
	}

	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(http.StatusMethodNotAllowed, codeMethodNotAllowed, fmt.Sprintf("method %s is not allowed: use POST", req.Method))
		return
	}
	// Authenticate before saying anything about which models exist.
	if !keys.allows(req.Header.Get("Authorization")) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="modelfleet-edge"`)
		fail(http.StatusUnauthorized, modelfleet.EUNAUTHORIZED, "a valid API key is required: send \"Authorization: Bearer <key>\"")
		return
	}
	if m == nil {
		fail(http.StatusNotFound, modelfleet.ENOTFOUND, fmt.Sprintf("model %q is not served at site %q; served: %s", name, r.Site, quoteList(r.names())))
		return
	}
	if req.ContentLength > MaxScoreBody {
		fail(http.StatusRequestEntityTooLarge, modelfleet.ETOOLARGE, fmt.Sprintf("request body is larger than %d bytes", MaxScoreBody))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxScoreBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		fail(http.StatusRequestEntityTooLarge, modelfleet.ETOOLARGE, fmt.Sprintf("request body is larger than %d bytes", MaxScoreBody))
		return
	case err != nil:
		fail(http.StatusBadRequest, modelfleet.EINVALID, fmt.Sprintf("reading request body: %v", err))
		return
	}
	x, err := r.vectorize(m.Features, body)
	if err != nil {
		fail(http.StatusBadRequest, modelfleet.EINVALID, err.Error())
		return
	}
	p, err := r.predict(m, x)
	if err != nil {
		r.log.Error("edge: score", "model", model, "version", version, "err", err)
		fail(http.StatusInternalServerError, modelfleet.EINTERNAL, fmt.Sprintf("model %s failed to score the request", m.Model))
		return
	}
	r.metrics.predictions.WithLabelValues(model, version).Observe(p)
	label := 0
	if p >= 0.5 {
		label = 1
	}
	writeJSON(w, http.StatusOK, scoreResponse{Model: model, Version: version, Prediction: p, Label: label, Site: r.Site})
}

// predict guards the Scorer: a row of the wrong length may panic in a runtime
// that trusts its caller, and a non-finite result cannot even be encoded.
func (r *Router) predict(m *LoadedModel, x []float64) (p float64, err error) {
	defer func() {
		if v := recover(); v != nil {
			p, err = 0, fmt.Errorf("model %s panicked: %v", m.Model, v)
		}
	}()
	if n := m.Scorer.NumFeatures(); len(x) != n {
		return 0, fmt.Errorf("vectorizer returned %d values, model %s expects %d", len(x), m.Model, n)
	}
	p, err = m.Scorer.Predict(x)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(p) || math.IsInf(p, 0) {
		return 0, fmt.Errorf("model %s returned a non-finite prediction %v", m.Model, p)
	}
	return p, nil
}

func (r *Router) readyz(w http.ResponseWriter, _ *http.Request) {
	n := countVersions(*r.routes.Load())
	if n == 0 {
		writeError(w, http.StatusServiceUnavailable, codeNotReady, fmt.Sprintf("no model is loaded at site %q yet", r.Site))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "models": n})
}

// keySet holds API keys as fixed-length hashes so that comparing them takes
// the same time whatever the length of the presented key.
type keySet struct {
	required bool // any key configured, even an empty one: fail closed
	hashes   [][sha256.Size]byte
}

func newKeySet(keys []string) keySet {
	ks := keySet{required: len(keys) > 0}
	for _, k := range keys {
		if k != "" { // an empty key must not let an empty token in
			ks.hashes = append(ks.hashes, sha256.Sum256([]byte(k)))
		}
	}
	return ks
}

// allows compares the bearer token against every key without stopping at a
// match, so timing does not tell which key or how much of it matched.
func (ks keySet) allows(header string) bool {
	if !ks.required {
		return true
	}
	const scheme = "Bearer "
	if len(header) <= len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return false
	}
	h := sha256.Sum256([]byte(header[len(scheme):]))
	match := 0
	for _, k := range ks.hashes {
		match |= subtle.ConstantTimeCompare(h[:], k[:])
	}
	return match == 1
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
