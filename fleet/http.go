package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/httpjson"
	"github.com/modelfleet/modelfleet/rollout"
)

// maxSiteBody bounds a site registration; a site record is a few KiB even
// with many served models.
const maxSiteBody = 256 << 10

// Handler serves the directory over HTTP:
//
//	GET /api/sites          every site
//	GET /api/sites/{id}     one site
//	PUT /api/sites/{id}     register or update a site (operators; agents send their
//	                        record with their actual-state report instead)
func (d *Directory) Handler() http.Handler {
	mux := http.NewServeMux()
	d.baselineRoutes(mux)
	d.artifactRoutes(mux)
	mux.HandleFunc("GET /api/sites", func(w http.ResponseWriter, r *http.Request) {
		sites, err := d.List()
		if err != nil {
			WriteError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, sites)
	})
	mux.HandleFunc("GET /api/sites/{id}", func(w http.ResponseWriter, r *http.Request) {
		s, err := d.Get(r.PathValue("id"))
		if err != nil {
			WriteError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, s)
	})
	mux.HandleFunc("PUT /api/sites/{id}", func(w http.ResponseWriter, r *http.Request) {
		var s modelfleet.Site
		if !decodeBody(w, r, maxSiteBody, "site record", &s) {
			return
		}
		if s.ID != r.PathValue("id") {
			WriteError(w, modelfleet.Errorf(modelfleet.EINVALID, "site id %q in the body does not match %q in the path", s.ID, r.PathValue("id")))
			return
		}
		saved, err := d.Put(s)
		if err != nil {
			WriteError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, saved)
	})
	d.routeDesired(mux)
	d.routeWorkloads(mux)
	return mux
}

// maxRolloutBody bounds rollout requests: a step over 10,000 sites is ~200 KiB.
const maxRolloutBody = 8 << 20

// maxLongPoll caps how long an agent's desired-state request may wait.
const maxLongPoll = 60 * time.Second

func (d *Directory) routeDesired(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/sites/{id}/desired", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		after, err := strconv.ParseInt(cmpOr(q.Get("after"), "-1"), 10, 64)
		if err != nil {
			WriteError(w, modelfleet.Errorf(modelfleet.EINVALID, "after %q is not a revision number", q.Get("after")))
			return
		}
		wait, err := time.ParseDuration(cmpOr(q.Get("wait"), "0s"))
		if err != nil || wait < 0 {
			WriteError(w, modelfleet.Errorf(modelfleet.EINVALID, "wait %q is not a duration", q.Get("wait")))
			return
		}
		wait = min(wait, maxLongPoll)
		done, ok := d.beginLongPoll(w, wait)
		if !ok {
			return
		}
		defer done()
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		defer cancel()
		site := r.PathValue("id")
		if _, agent := q[agentKeysParam]; agent {
			doc, err := d.desiredDoc(ctx, site, after)
			if err == nil && doc == nil {
				doc, err = json.Marshal(emptyDesired(site))
			}
			if err != nil {
				WriteError(w, err)
				return
			}
			var held []string
			_, refs := q[statementRefsParam]
			if refs {
				held = heldStatements(q.Get(statementRefsParam))
			}
			d.writeAgentDesired(ctx, w, doc, q.Get(agentKeysParam), refs, held)
			return
		}
		ds, err := d.Desired(ctx, site, after)
		if err != nil {
			WriteError(w, err)
			return
		}
		d.writeDesired(w, ds)
	})
	mux.HandleFunc("PUT /api/sites/{id}/actual", func(w http.ResponseWriter, r *http.Request) {
		var a modelfleet.Actual
		if !decodeBody(w, r, maxSiteBody, "actual state", &a) {
			return
		}
		if a.Site != r.PathValue("id") {
			WriteError(w, modelfleet.Errorf(modelfleet.EINVALID, "site %q in the body does not match %q in the path", a.Site, r.PathValue("id")))
			return
		}
		if err := d.ReportActual(a); err != nil {
			WriteError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"site": a.Site, "revision": a.Revision})
	})
	mux.HandleFunc("POST /api/rollouts/step", func(w http.ResponseWriter, r *http.Request) {
		var req modelfleet.StepRequest
		if !decodeBody(w, r, maxRolloutBody, "step request", &req) {
			return
		}
		respond[modelfleet.StepResult](w)(d.Step(req))
	})
	mux.HandleFunc("POST /api/rollouts/rollback", func(w http.ResponseWriter, r *http.Request) {
		var req modelfleet.LeaseRequest
		if !decodeBody(w, r, maxRolloutBody, "rollback request", &req) {
			return
		}
		respond[modelfleet.StepResult](w)(d.Rollback(req.Release, req.Model, req.Sites, req.TraceParent))
	})
	mux.HandleFunc("POST /api/rollouts/finish", func(w http.ResponseWriter, r *http.Request) {
		var req modelfleet.LeaseRequest
		if !decodeBody(w, r, maxRolloutBody, "finish request", &req) {
			return
		}
		respond[modelfleet.StepResult](w)(d.Finish(req.Release, req.Model, req.Sites))
	})
	mux.HandleFunc("POST /api/rollouts/progress", func(w http.ResponseWriter, r *http.Request) {
		var req modelfleet.ProgressRequest
		if !decodeBody(w, r, maxRolloutBody, "progress request", &req) {
			return
		}
		respond[modelfleet.Progress](w)(d.Progress(req.Model, req.Version, req.Sites))
	})
	mux.HandleFunc("PUT /api/policies/{model}", func(w http.ResponseWriter, r *http.Request) {
		doc, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSiteBody))
		if err != nil {
			WriteError(w, modelfleet.Errorf(modelfleet.ETOOLARGE, "policy exceeds %d bytes", maxSiteBody))
			return
		}
		respond[rollout.Policy](w)(d.PutPolicy(r.PathValue("model"), doc))
	})
	mux.HandleFunc("GET /api/policies/{model}", func(w http.ResponseWriter, r *http.Request) {
		p, _, err := d.Policy(r.PathValue("model"))
		respond[rollout.Policy](w)(p, err)
	})
}

func respond[T any](w http.ResponseWriter) func(T, error) {
	return func(v T, err error) {
		if err != nil {
			WriteError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// decodeBody decodes one strict JSON object of at most limit bytes, writing
// the error response itself when it fails.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, what string, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			WriteError(w, modelfleet.Errorf(modelfleet.ETOOLARGE, "%s exceeds %d bytes", what, limit))
			return false
		}
		WriteError(w, modelfleet.Errorf(modelfleet.EINVALID, "%s is not valid JSON: %v", what, err))
		return false
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		WriteError(w, modelfleet.Errorf(modelfleet.EINVALID, "%s has trailing data after the JSON object", what))
		return false
	}
	return true
}

// WriteError writes err in the shared error envelope (see httpjson).
func WriteError(w http.ResponseWriter, err error) { httpjson.WriteError(w, err) }

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }
