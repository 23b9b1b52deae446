package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelfleet/modelfleet"
)

// Ground truth arrives after the prediction: a bearing fails, or an
// inspector labels the part. A caller that wants its predictions judged
// sends X-Modelfleet-Request-Id with the score request and later posts the
// true label for that ID to /feedback/{model}; the router counts, per
// version, how many labelled predictions were right. A regressor's caller
// posts the true value instead, and the router sums, per version, the
// squared errors and the values (modelfleet.Residuals), from which the
// control plane computes R². A release's minQuality criterion reads those
// figures. Requests without the header cost nothing.
const (
	HeaderRequestID = "X-Modelfleet-Request-Id"
	// MaxRequestID bounds the header's length.
	MaxRequestID = 128
	// MaxFeedbackValue bounds a regressor's true value in magnitude, so
	// the sums of squares stay finite.
	MaxFeedbackValue = 1e15
	// RememberedPredictions is how many labelled-to-be predictions a router
	// keeps (oldest forgotten first): at a few hundred bytes each, a few
	// MiB for ground truth that arrives within hours at factory rates.
	RememberedPredictions = 1 << 16
)

type outcome struct {
	version string
	label   int     // a classifier's; -1 for a regressor
	value   float64 // a regressor's prediction
}

// outcomes remembers the label each identified prediction answered. Its
// memory is taken on the first identified prediction: a router whose
// callers never send a request ID (most, and every simulated site of a
// benchmark) pays nothing.
type outcomes struct {
	mu   sync.Mutex
	size int
	m    map[string]outcome // model + "\x00" + request id
	ring []string
	next int
}

func newOutcomes(n int) *outcomes { return &outcomes{size: n} }

func (o *outcomes) record(model, id, version string, label int, value float64) {
	k := model + "\x00" + id
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ring == nil {
		o.m, o.ring = map[string]outcome{}, make([]string, o.size)
	}
	if old := o.ring[o.next]; old != "" {
		delete(o.m, old)
	}
	o.ring[o.next] = k
	o.next = (o.next + 1) % len(o.ring)
	o.m[k] = outcome{version: version, label: label, value: value}
}

// take returns and forgets a prediction: a label counts once.
func (o *outcomes) take(model, id string) (outcome, bool) {
	k := model + "\x00" + id
	o.mu.Lock()
	defer o.mu.Unlock()
	out, ok := o.m[k]
	delete(o.m, k)
	return out, ok
}

type feedbackState struct {
	outcomes  *outcomes
	counts    *prometheus.CounterVec
	residuals *prometheus.GaugeVec // a regressor's sums, by stat
}

// The stat label of modelfleet_edge_feedback_residuals.
const (
	statSquaredError  = "squared_error"
	statTarget        = "target"
	statTargetSquares = "target_squares"
)

func newFeedbackState(reg *prometheus.Registry, site string) *feedbackState {
	st := &feedbackState{
		outcomes: newOutcomes(RememberedPredictions),
		counts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "modelfleet_edge_feedback_total",
			Help:        "Labelled predictions (ground truth posted to /feedback) by whether the version's label was right (correct or wrong).",
			ConstLabels: prometheus.Labels{"site": site},
		}, []string{"model", "version", "outcome"}),
	}
	// Gauges, not counters: the sum of the values goes down with a
	// negative value. They only ever add within one epoch.
	st.residuals = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name:        "modelfleet_edge_feedback_residuals",
		Help:        "A regressor's predictions whose true value was posted to /feedback, as sums: squared_error (value minus prediction, squared), target (the values), target_squares.",
		ConstLabels: prometheus.Labels{"site": site},
	}, []string{"model", "version", "stat"})
	reg.MustRegister(st.counts, st.residuals)
	return st
}

// forget deletes the feedback series of one version of a model.
func (st *feedbackState) forget(model, version string) {
	l := prometheus.Labels{"model": model, "version": version}
	st.counts.DeletePartialMatch(l)
	st.residuals.DeletePartialMatch(l)
}

// remember records an identified prediction for its ground truth: the
// label of a classifier (label >= 0), the value p of a regressor.
func (r *Router) remember(req *http.Request, model string, a *arm, label int, p float64) {
	id := header(req.Header, HeaderRequestID)
	if id == "" || len(id) > MaxRequestID {
		return
	}
	r.feedback.outcomes.record(model, id, a.Model.Version, label, p)
}

// classes is the largest number of classes of the route's versions (2 for
// a route of binary models or regressors, or no route at all).
func (rt *route) classes() int {
	n := 2
	if rt != nil {
		for _, a := range rt.arms {
			n = max(n, a.classes)
		}
	}
	return n
}

// regression reports whether the route serves regressors (the true value
// of a prediction is a number, not a class).
func (rt *route) regression() bool {
	return rt != nil && len(rt.arms) > 0 && rt.arms[0].task == modelfleet.TaskRegression
}

// feedbackRequest is the body of POST /feedback/{model}: a classifier's
// label, or a regressor's value.
type feedbackRequest struct {
	RequestID string   `json:"requestId"`
	Label     *int     `json:"label"`
	Value     *float64 `json:"value"`
}

// postFeedback answers POST /feedback/{model}: the true label of an
// identified prediction.
func (r *Router) postFeedback(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, fmt.Sprintf("method %s is not allowed: use POST", req.Method))
		return
	}
	t := r.table.Load()
	name := req.PathValue("model")
	rt := t.routes[name]
	if !t.keys.allows(name, rt != nil, req.Header.Get("Authorization")) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="modelfleet-edge"`)
		writeError(w, http.StatusUnauthorized, modelfleet.EUNAUTHORIZED, "a valid API key is required: send \"Authorization: Bearer <key>\"")
		return
	}
	var fb feedbackRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fb); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || errors.Is(err, io.ErrUnexpectedEOF) {
			writeError(w, http.StatusBadRequest, modelfleet.EINVALID, "feedback must be a small JSON object: {\"requestId\": \"...\", \"label\": 0 or 1} ({\"value\": number} for a regressor)")
			return
		}
		writeError(w, http.StatusBadRequest, modelfleet.EINVALID, fmt.Sprintf("feedback is not valid JSON: %v", err))
		return
	}
	switch {
	case fb.RequestID == "" || len(fb.RequestID) > MaxRequestID:
		writeError(w, http.StatusBadRequest, modelfleet.EINVALID, fmt.Sprintf("requestId must be 1 to %d characters", MaxRequestID))
		return
	case rt.regression() && (fb.Value == nil || fb.Label != nil || math.IsNaN(*fb.Value) || math.Abs(*fb.Value) > MaxFeedbackValue):
		writeError(w, http.StatusBadRequest, modelfleet.EINVALID, fmt.Sprintf("model %q is a regressor: send its true \"value\", a number of magnitude at most %g, and no label", name, MaxFeedbackValue))
		return
	case !rt.regression() && fb.Value != nil:
		writeError(w, http.StatusBadRequest, modelfleet.EINVALID, fmt.Sprintf("model %q is a classifier: send its true \"label\", not a value", name))
		return
	case !rt.regression() && (fb.Label == nil || *fb.Label < 0 || *fb.Label >= rt.classes()):
		writeError(w, http.StatusBadRequest, modelfleet.EINVALID, fmt.Sprintf("label must be a class of model %q: 0 to %d", name, rt.classes()-1))
		return
	}
	out, ok := r.feedback.outcomes.take(name, fb.RequestID)
	if !ok {
		writeError(w, http.StatusNotFound, modelfleet.ENOTFOUND, fmt.Sprintf("no prediction of model %q with request id %q is remembered: send %s with the score request (the last %d are kept; each label counts once)", name, fb.RequestID, HeaderRequestID, RememberedPredictions))
		return
	}
	// A version no longer loaded has no series any more (Router.retire):
	// its label is judged, not counted, so that it does not bring them
	// back.
	counted := rt.version(out.version) != nil
	if out.label < 0 {
		if fb.Value == nil {
			// The version that made the prediction was a regressor, the
			// route's versions are classifiers now: the label cannot be
			// judged against a value.
			writeError(w, http.StatusConflict, modelfleet.EINVALID, fmt.Sprintf("the prediction %q was made by a regressor (version %s): send its true \"value\"", fb.RequestID, out.version))
			return
		}
		v, e := *fb.Value, *fb.Value-out.value
		if counted {
			r.feedback.counts.WithLabelValues(name, out.version, "valued").Inc()
			r.feedback.residuals.WithLabelValues(name, out.version, statSquaredError).Add(e * e)
			r.feedback.residuals.WithLabelValues(name, out.version, statTarget).Add(v)
			r.feedback.residuals.WithLabelValues(name, out.version, statTargetSquares).Add(v * v)
		}
		writeJSON(w, http.StatusOK, map[string]any{"model": name, "version": out.version, "predicted": out.value, "value": v, "error": e, "counted": counted})
		return
	}
	if fb.Label == nil {
		writeError(w, http.StatusConflict, modelfleet.EINVALID, fmt.Sprintf("the prediction %q was made by a classifier (version %s): send its true \"label\"", fb.RequestID, out.version))
		return
	}
	result := "wrong"
	if out.label == *fb.Label {
		result = "correct"
	}
	if counted {
		r.feedback.counts.WithLabelValues(name, out.version, result).Inc()
	}
	writeJSON(w, http.StatusOK, map[string]any{"model": name, "version": out.version, "predicted": out.label, "label": *fb.Label, "correct": result == "correct", "counted": counted})
}
