package fleet

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/modelfleet/modelfleet"
)

// maxSiteBody bounds a site registration; a site record is a few KiB even
// with many served models.
const maxSiteBody = 256 << 10

// Handler serves the directory over HTTP:
//
//	GET /api/sites          every site
//	GET /api/sites/{id}     one site
//	PUT /api/sites/{id}     register or update a site (agents call it as a heartbeat)
func (d *Directory) Handler() http.Handler {
	mux := http.NewServeMux()
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
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSiteBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				WriteError(w, modelfleet.Errorf(modelfleet.ETOOLARGE, "site record exceeds %d bytes", maxSiteBody))
				return
			}
			WriteError(w, modelfleet.Errorf(modelfleet.EINVALID, "site record is not valid JSON: %v", err))
			return
		}
		if err := dec.Decode(&struct{}{}); err != io.EOF {
			WriteError(w, modelfleet.Errorf(modelfleet.EINVALID, "site record has trailing data after the JSON object"))
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
	return mux
}

// WriteError writes err as {"error": code, "message": ...} with the status
// its code maps to. Internal errors never leak their details.
func WriteError(w http.ResponseWriter, err error) {
	writeJSON(w, StatusCode(modelfleet.ErrorCode(err)), map[string]string{
		"error":   modelfleet.ErrorCode(err),
		"message": modelfleet.ErrorMessage(err),
	})
}

// StatusCode maps a domain error code to an HTTP status.
func StatusCode(code string) int {
	switch code {
	case modelfleet.EINVALID:
		return http.StatusBadRequest
	case modelfleet.ENOTFOUND:
		return http.StatusNotFound
	case modelfleet.ECONFLICT:
		return http.StatusConflict
	case modelfleet.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case modelfleet.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	default:
		return http.StatusInternalServerError
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
