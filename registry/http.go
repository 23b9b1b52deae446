package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/httpjson"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// maxMetadataBytes bounds the metadata part, which is read into memory.
const maxMetadataBytes = 1 << 20

// Handler returns the registry's HTTP API:
//
//	POST /api/models                               register (multipart: metadata, artifact[, validation])
//	GET  /api/models                               list model versions
//	GET  /api/models/{name}/versions/{version}     one model version
//	GET  /api/blobs/{digest}                       an artifact or validation data set
//	GET  /healthz                                  liveness and database check
//	GET  /metrics                                  Prometheus metrics
func (r *Registry) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/models", r.handleRegister)
	mux.HandleFunc("GET /api/models", r.handleList)
	mux.HandleFunc("GET /api/models/{name}/versions/{version}", r.handleGet)
	mux.HandleFunc("GET /api/blobs/{digest}", r.handleBlob)
	mux.HandleFunc("GET /healthz", r.handleHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(r.metrics.reg, promhttp.HandlerOpts{}))
	return mux
}

// handleRegister streams a multipart upload into the blob store, part by
// part, so an upload never sits in memory or in a form temp file. The
// metadata part comes first: it is checked before any artifact byte is read,
// so a bad request fails fast and stores nothing.
func (r *Registry) handleRegister(w http.ResponseWriter, req *http.Request) {
	// Two blobs, the metadata and the multipart framing; each blob is held
	// to MaxArtifactBytes on its own by the blob store.
	req.Body = http.MaxBytesReader(w, req.Body, 2*r.opts.MaxArtifactBytes+2*maxMetadataBytes)
	mr, err := req.MultipartReader()
	if err != nil {
		r.writeError(w, req, modelfleet.Errorf(modelfleet.EINVALID, "request must be multipart/form-data with parts \"metadata\", \"artifact\" and optionally \"validation\""))
		return
	}
	m, art, data, err := r.readUpload(req.Context(), mr)
	if err != nil {
		r.metrics.registrations.WithLabelValues("rejected").Inc()
		r.writeError(w, req, err)
		return
	}
	delete(m.Properties, modelfleet.PropRegisteredBy)
	if r.opts.Subject != nil {
		if sub := r.opts.Subject(req); sub != "" {
			if m.Properties == nil {
				m.Properties = map[string]string{}
			}
			m.Properties[modelfleet.PropRegisteredBy] = sub
		}
	}
	m, created, err := r.commit(m, *art, data)
	if err != nil {
		r.writeError(w, req, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, withURLs(m, r.baseURL(req)))
}

func (r *Registry) readUpload(ctx context.Context, mr *multipart.Reader) (m modelfleet.Model, art, data *blobInfo, err error) {
	part, err := nextPart(mr)
	if err != nil {
		return m, nil, nil, err
	}
	if part == nil || part.FormName() != "metadata" {
		return m, nil, nil, modelfleet.Errorf(modelfleet.EINVALID, "the first part must be \"metadata\" (the model JSON)")
	}
	if m, err = decodeMetadata(uploadReader{part}); err != nil {
		return m, nil, nil, err
	}
	// Whether validation data follows is not known yet; assume it matches
	// the spec and check for real once the parts are read.
	if err := precheck(m, m.Validation != nil); err != nil {
		return m, nil, nil, err
	}
	for {
		part, err := nextPart(mr)
		if err != nil {
			return m, nil, nil, err
		}
		if part == nil {
			break
		}
		switch name := part.FormName(); name {
		case "artifact":
			if art != nil {
				return m, nil, nil, modelfleet.Errorf(modelfleet.EINVALID, "more than one \"artifact\" part")
			}
			if art, err = r.putBlob(ctx, "artifact", uploadReader{part}); err != nil {
				return m, nil, nil, err
			}
		case "validation":
			if data != nil {
				return m, nil, nil, modelfleet.Errorf(modelfleet.EINVALID, "more than one \"validation\" part")
			}
			if data, err = r.putBlob(ctx, "validation data", uploadReader{part}); err != nil {
				return m, nil, nil, err
			}
		default:
			return m, nil, nil, modelfleet.Errorf(modelfleet.EINVALID, "unexpected part %q: want \"artifact\" or \"validation\"", name)
		}
	}
	if art == nil {
		return m, nil, nil, modelfleet.Errorf(modelfleet.EINVALID, "the \"artifact\" part is required")
	}
	if err := precheck(m, data != nil); err != nil {
		return m, nil, nil, err
	}
	return m, art, data, nil
}

// decodeMetadata parses the metadata part strictly: an unknown field is far
// more likely a typo ("validaton") than something to ignore silently.
func decodeMetadata(rd io.Reader) (modelfleet.Model, error) {
	var m modelfleet.Model
	raw, err := io.ReadAll(io.LimitReader(rd, maxMetadataBytes+1))
	if err != nil {
		return m, err
	}
	if len(raw) > maxMetadataBytes {
		return m, modelfleet.Errorf(modelfleet.ETOOLARGE, "metadata is larger than the limit of %d bytes", maxMetadataBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return modelfleet.Model{}, modelfleet.Errorf(modelfleet.EINVALID, "metadata is not a valid model JSON object: %v", err)
	}
	if dec.Decode(&struct{}{}) != io.EOF {
		return modelfleet.Model{}, modelfleet.Errorf(modelfleet.EINVALID, "metadata has data after the model JSON object")
	}
	return m, nil
}

// nextPart returns the next part, nil at the end of the body.
func nextPart(mr *multipart.Reader) (*multipart.Part, error) {
	p, err := mr.NextPart()
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, uploadError(err)
	}
	return p, nil
}

// uploadReader turns read errors of the request body into client errors: a
// body that breaks off or has bad framing is the sender's problem.
type uploadReader struct{ r io.Reader }

func (u uploadReader) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	if err != nil && err != io.EOF {
		err = uploadError(err)
	}
	return n, err
}

func uploadError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return modelfleet.Errorf(modelfleet.ETOOLARGE, "request body is larger than the limit of %d bytes", mbe.Limit)
	}
	return modelfleet.Errorf(modelfleet.EINVALID, "malformed multipart body: %v", err)
}

func (r *Registry) handleList(w http.ResponseWriter, req *http.Request) {
	models, err := r.List()
	if err != nil {
		r.writeError(w, req, err)
		return
	}
	base := r.baseURL(req)
	for i := range models {
		models[i] = withURLs(models[i], base)
	}
	writeJSON(w, http.StatusOK, models)
}

func (r *Registry) handleGet(w http.ResponseWriter, req *http.Request) {
	m, err := r.Get(req.PathValue("name"), req.PathValue("version"))
	if err != nil {
		r.writeError(w, req, err)
		return
	}
	writeJSON(w, http.StatusOK, withURLs(m, r.baseURL(req)))
}

func (r *Registry) handleBlob(w http.ResponseWriter, req *http.Request) {
	digest := req.PathValue("digest")
	f, _, err := r.blobs.open(digest)
	if err != nil {
		r.writeError(w, req, err)
		return
	}
	defer f.Close()
	// A blob never changes under its digest: the digest is a strong ETag and
	// the response is cacheable forever. ServeContent answers If-None-Match
	// and Range (resumed downloads over flaky factory links).
	h := w.Header()
	h.Set("ETag", `"`+digest+`"`)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, req, "", time.Time{}, f)
}

func (r *Registry) handleHealth(w http.ResponseWriter, req *http.Request) {
	if err := r.ping(); err != nil {
		r.log.Error("health check failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// baseURL is where clients reach this registry: Options.PublicURL when set
// (behind a proxy), else the scheme and Host the request came in on.
func (r *Registry) baseURL(req *http.Request) string {
	if r.opts.PublicURL != "" {
		return r.opts.PublicURL
	}
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + req.Host
}

// withURLs fills the download URLs, which depend on the base URL and so are
// never stored.
func withURLs(m modelfleet.Model, base string) modelfleet.Model {
	m.ArtifactURL = base + "/api/blobs/" + m.Digest
	if m.Validation != nil {
		v := *m.Validation
		v.DataURL = base + "/api/blobs/" + v.DataDigest
		m.Validation = &v
	}
	return m
}

func (r *Registry) writeError(w http.ResponseWriter, req *http.Request, err error) {
	if modelfleet.ErrorCode(err) == modelfleet.EINTERNAL {
		r.log.Error("request failed", "method", req.Method, "path", req.URL.Path, "err", err)
	}
	httpjson.WriteError(w, err)
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }
