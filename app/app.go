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
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

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
