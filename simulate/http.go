package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"
)

// Handler serves the line's control API (what `modelfleet simulate` calls):
//
//	GET  /healthz  200 while connected to the broker, else 503
//	GET  /api/line the line's machines, drift, failures and counters
//	GET  /drift    {"model": "bearing-failure", "shift": 0}
//	POST /drift    {"shift": 0.5, "model": "bearing-failure"} (model optional)
//	POST /fail     {"machine": "line-1-m03", "failing": true}
func (l *Line) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		code := http.StatusOK
		if !l.up.Load() {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]any{"connected": l.up.Load(), "sent": l.sent.Load()})
	})
	mux.HandleFunc("GET /api/line", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, l.Stats()) })
	mux.HandleFunc("GET /drift", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, DriftRequest{Model: Model, Shift: l.Drift()})
	})
	mux.HandleFunc("POST /drift", func(w http.ResponseWriter, r *http.Request) {
		var req DriftRequest
		if !decode(w, r, &req) {
			return
		}
		if req.Model != "" && req.Model != Model {
			writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("this line simulates inputs of model %q, not %q", Model, req.Model))
			return
		}
		if math.IsNaN(req.Shift) || math.Abs(req.Shift) > 10 {
			writeError(w, http.StatusBadRequest, "invalid", "shift must be a number from -10 to 10")
			return
		}
		l.SetDrift(req.Shift)
		l.log.Info("simulate: drift set", "shift", req.Shift)
		writeJSON(w, http.StatusOK, DriftRequest{Model: Model, Shift: req.Shift})
	})
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, r *http.Request) {
		var req FailRequest
		if !decode(w, r, &req) {
			return
		}
		if err := l.Fail(req.Machine, req.Failing); err != nil {
			writeError(w, http.StatusNotFound, "not_found", err.Error())
			return
		}
		l.log.Info("simulate: failure injected", "machine", req.Machine, "failing", req.Failing)
		writeJSON(w, http.StatusOK, req)
	})
	return mux
}

// DriftRequest sets (and reports) the drift knob.
type DriftRequest struct {
	Model string  `json:"model,omitempty"`
	Shift float64 `json:"shift"`
}

// FailRequest starts or repairs a machine's bearing failure.
type FailRequest struct {
	Machine string `json:"machine"`
	Failing bool   `json:"failing"`
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("request body: %v", err))
		return false
	}
	// One JSON value, nothing after it: trailing data is a malformed
	// request, not something to ignore.
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "invalid", "request body: data after the JSON value")
		return false
	}
	return true
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Client drives a simulator's control API (the CLI's `simulate drift`).
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:9101
	HTTP    *http.Client
}

// SetDrift sets the line's drift for model's inputs.
func (c *Client) SetDrift(ctx context.Context, model string, shift float64) error {
	return c.post(ctx, "/drift", DriftRequest{Model: model, Shift: shift})
}

// Fail starts or repairs a bearing failure on machine.
func (c *Client) Fail(ctx context.Context, machine string, failing bool) error {
	return c.post(ctx, "/fail", FailRequest{Machine: machine, Failing: failing})
}

func (c *Client) post(ctx context.Context, path string, v any) error {
	body, _ := json.Marshal(v)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("simulator %s unreachable: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&e)
		return fmt.Errorf("simulator %s: %s %s: %d %s", c.BaseURL, http.MethodPost, path, resp.StatusCode, e.Message)
	}
	return nil
}
