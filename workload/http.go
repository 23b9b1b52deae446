package workload

import (
	"net/http"
)

// Status is the supervisor's view of its site's workload.
type Status struct {
	Site      string  `json:"site"`
	State     string  `json:"state"`
	Workload  string  `json:"workload,omitempty"`
	Version   string  `json:"version,omitempty"`
	Model     string  `json:"model,omitempty"`
	ClientID  string  `json:"clientId,omitempty"`
	Restarts  int     `json:"restarts"`
	LastError string  `json:"lastError,omitempty"`
	Health    *Health `json:"health,omitempty"`
}

// Status reports the running version and its health.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	st := Status{Site: s.cfg.Site, State: s.state, Restarts: s.restarts, LastError: s.lastErr, ClientID: s.clientID}
	cur, prog := s.cur, s.prog
	s.mu.Unlock()
	if prog != nil {
		st.Workload, st.Version, st.Model = prog.Manifest.Name, prog.Manifest.Version, prog.Manifest.Model
	}
	if cur != nil {
		h := cur.Health()
		st.Health = &h
	}
	return st
}

// Handler serves the site's workload endpoints, stable across versions:
//
//	GET /healthz     200 while a version runs and is healthy, else 503; the Status
//	GET /decisions   recent decisions, newest first (?limit=N, default 100)
//	GET /metrics     Prometheus metrics
func (s *Supervisor) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		st := s.Status()
		code := http.StatusOK
		if st.State != StateRunning || st.Health == nil || !st.Health.Healthy {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, st)
	})
	mux.HandleFunc("GET /decisions", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		rec := s.Record
		s.mu.Unlock()
		if rec == nil {
			writeJSON(w, http.StatusOK, []Decision{})
			return
		}
		rec.ServeHTTP(w, r)
	})
	mux.Handle("GET /metrics", s.Metrics.Handler())
	return mux
}

// Handler serves one runtime's endpoints when it runs on its own (no
// supervisor): the same paths as Supervisor.Handler.
func (r *Runtime) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		h := r.Health()
		code := http.StatusOK
		if !h.Healthy {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, h)
	})
	mux.Handle("GET /decisions", r.cfg.Record)
	mux.Handle("GET /metrics", r.cfg.Metrics.Handler())
	return mux
}
