package edge

import (
	"time"

	"github.com/modelfleet/modelfleet"
)

// Observer sees every score request a loaded version answered after the
// caller was authenticated: the monitoring loop (package signals) turns
// them into per-window histograms. They must be cheap and must not keep
// features or body. A failed or rejected request is reported on the
// request path; a scored one from the router's backlog (post.go), with
// other scored requests, in the order they were answered, up to postDelay
// after its answer. signals.Aggregator implements it.
type Observer interface {
	// Observe reports a request that was scored (err nil: features is the
	// row in the model's order, prediction its output) or failed after its
	// body was accepted as a row (err carries the error code).
	Observe(model, version string, features []float64, prediction float64, latency time.Duration, err error)
	// ObserveRejected reports a request whose body the vectorizer rejected
	// (missing, null or non-numeric features); features are the model's
	// declared names.
	ObserveRejected(model, version string, features []string, body []byte, latency time.Duration)
}

// observerRef boxes an Observer for Router.observer (an atomic pointer:
// the request path loads it without a lock).
type observerRef struct{ o Observer }

// SetObserver installs o as the router's observer (nil removes it).
func (r *Router) SetObserver(o Observer) {
	if o == nil {
		r.observer.Store(nil)
		return
	}
	r.observer.Store(&observerRef{o})
}

func (r *Router) loadObserver() Observer {
	if ref := r.observer.Load(); ref != nil {
		return ref.o
	}
	return nil
}

// The request path calls these (http.go's score), after the API key
// check: an unauthenticated caller must not be able to move a version's
// error rate, which releases roll back on.
//
//	scored:   r.queuePost(...), then runPost's Observe  after writeScore (post.go)
//	rejected: r.observeRejected(a, body, start)          when r.vectorize fails
//	failed:   r.observeFailed(a, code, start)            when reading the body or predict fails
//
// The V2 path calls observeScored for each row of a request, after its
// answer.

func (r *Router) observeScored(a *arm, x []float64, p float64, start time.Time) {
	if o := r.loadObserver(); o != nil {
		o.Observe(a.Model.Name, a.Model.Version, x, p, time.Since(start), nil)
	}
}

func (r *Router) observeRejected(a *arm, body []byte, start time.Time) {
	if o := r.loadObserver(); o != nil {
		o.ObserveRejected(a.Model.Name, a.Model.Version, a.Features, body, time.Since(start))
	}
}

// observeFailed allocates the error, which only the failure path pays.
func (r *Router) observeFailed(a *arm, code string, start time.Time) {
	if o := r.loadObserver(); o != nil {
		o.Observe(a.Model.Name, a.Model.Version, nil, 0, time.Since(start), modelfleet.Errorf(code, "%s", code))
	}
}
