// Package app wires modelfleet's components into runnable processes: the
// gateway (events webhook + site directory), the cloud worker, a site's
// standalone workload (OpenWorkloadRunner), and the embedded dev stack that
// runs them with a Temporal dev server, the embedded registry and simulated
// sites on one machine. A site's edge agent is
// package agent's (agent.Open, for `modelfleet edge` and the dev stack's
// sites alike). cmd/modelfleet only parses flags and calls in here; the
// end-to-end tests use it too.
package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// httpServer is a listener plus a server, so callers learn the bound address
// (port 0 in tests) before serving.
type httpServer struct {
	ln  net.Listener
	srv *http.Server
}

func listen(addr string, h http.Handler) (*httpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &httpServer{ln: ln, srv: newServer(h)}, nil
}

func newServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
}

func (s *httpServer) URL() string { return "http://" + s.ln.Addr().String() }

func (s *httpServer) serve(log *slog.Logger, name string) {
	go func() {
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "server", name, "error", err)
		}
	}()
}

func (s *httpServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// healthz answers 200 while the process runs.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

func orDefault(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
