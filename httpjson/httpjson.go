// Package httpjson holds the JSON-over-HTTP conventions every modelfleet API
// shares: the error envelope {"error": "<code>", "message": "..."}, the one
// mapping from domain error codes to HTTP status, and the client side that
// turns an error response back into a *modelfleet.Error. Keeping them in one
// place keeps every API's errors alike for the people reading them.
package httpjson

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/modelfleet/modelfleet"
)

// ErrorBody is the JSON of every error response.
type ErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// Status maps a domain error code to its HTTP status.
func Status(code string) int {
	switch code {
	case modelfleet.EINVALID:
		return http.StatusBadRequest
	case modelfleet.ENOTFOUND:
		return http.StatusNotFound
	case modelfleet.ECONFLICT:
		return http.StatusConflict
	case modelfleet.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case modelfleet.EFORBIDDEN:
		return http.StatusForbidden
	case modelfleet.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	default:
		return http.StatusInternalServerError
	}
}

// Code maps an HTTP status back to a domain code, for an error response
// without our JSON envelope (a proxy's 502, say).
func Code(status int) string {
	switch status {
	case http.StatusBadRequest:
		return modelfleet.EINVALID
	case http.StatusNotFound:
		return modelfleet.ENOTFOUND
	case http.StatusConflict:
		return modelfleet.ECONFLICT
	case http.StatusUnauthorized:
		return modelfleet.EUNAUTHORIZED
	case http.StatusForbidden:
		return modelfleet.EFORBIDDEN
	case http.StatusRequestEntityTooLarge:
		return modelfleet.ETOOLARGE
	default:
		return modelfleet.EINTERNAL
	}
}

// Write writes v as indented JSON with the given status.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError writes err in the envelope with the status its code maps to.
// Internal errors say only "internal error": their details belong in logs.
func WriteError(w http.ResponseWriter, err error) {
	code := modelfleet.ErrorCode(err)
	Write(w, Status(code), ErrorBody{Error: code, Message: modelfleet.ErrorMessage(err)})
}

// ResponseError returns the *modelfleet.Error an error response carries, or
// one made from the status when the body is not our envelope.
func ResponseError(status int, statusText string, body []byte) error {
	var e ErrorBody
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return modelfleet.Errorf(e.Error, "%s", e.Message)
	}
	return modelfleet.Errorf(Code(status), "unexpected status %s", statusText)
}

// maxResponseBytes bounds a JSON response a client reads into memory.
const maxResponseBytes = 64 << 20

// Do sends body (JSON; nil for none) to url and decodes a 2xx JSON
// response into out; an error response comes back as the server's
// *modelfleet.Error. what prefixes errors ("fleet", "queue"). hc nil means
// http.DefaultClient.
func Do(ctx context.Context, hc *http.Client, what, method, url string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w", what, method, url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w", what, method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	buf, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%s: %s %s: read response: %w", what, method, req.URL.Path, err)
	}
	if resp.StatusCode/100 != 2 {
		return ResponseError(resp.StatusCode, fmt.Sprintf("%s: %s %s: %s", what, method, req.URL.Path, resp.Status), buf)
	}
	if err := json.Unmarshal(buf, out); err != nil {
		return fmt.Errorf("%s: %s %s: decode response: %w", what, method, req.URL.Path, err)
	}
	return nil
}

// DecodeJSON reads a request body of at most max bytes into v strictly:
// unknown fields, trailing data and an oversize body are errors (EINVALID,
// ETOOLARGE) fit for the caller.
func DecodeJSON(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return modelfleet.Errorf(modelfleet.ETOOLARGE, "request body exceeds %d bytes", max)
		}
		return modelfleet.Errorf(modelfleet.EINVALID, "request body: %v", err)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		return modelfleet.Errorf(modelfleet.EINVALID, "request body has trailing data after the JSON object")
	}
	return nil
}
