// Command modelfleet is the one binary of modelfleet: the embedded dev stack,
// each production process (gateway, worker, edge agent), and the operator
// CLI (model, release, site).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/modelfleet/modelfleet/workers"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "modelfleet:", err)
		os.Exit(1)
	}
}

// globals are the connection settings every command shares. Each has an
// environment variable so scripts and containers need no flags.
type globals struct {
	temporalAddress string
	namespace       string
	temporalTLS     workers.TLS
	gatewayURL      string
	registryURL     string
	logLevel        string
	logJSON         bool
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "modelfleet",
		Short:         "Take ML models from a registry to a fleet of factory edge sites, safely",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.temporalAddress, "temporal-address", envOr("MODELFLEET_TEMPORAL_ADDRESS", "127.0.0.1:7233"), "Temporal frontend host:port ($MODELFLEET_TEMPORAL_ADDRESS)")
	pf.StringVar(&g.namespace, "namespace", envOr("MODELFLEET_NAMESPACE", "default"), "Temporal namespace ($MODELFLEET_NAMESPACE)")
	g.addTemporalTLSFlags(pf)
	pf.StringVar(&g.gatewayURL, "gateway-url", envOr("MODELFLEET_GATEWAY_URL", "http://127.0.0.1:8080"), "gateway base URL: events webhook and site directory ($MODELFLEET_GATEWAY_URL)")
	pf.StringVar(&g.registryURL, "registry-url", envOr("MODELFLEET_REGISTRY_URL", "http://127.0.0.1:8081"), "embedded model registry base URL ($MODELFLEET_REGISTRY_URL)")
	pf.StringVar(&g.logLevel, "log-level", envOr("MODELFLEET_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	pf.BoolVar(&g.logJSON, "log-json", false, "write logs as JSON")
	root.AddCommand(
		newDevCmd(g), newGatewayCmd(g), newWorkerCmd(g), newEdgeCmd(g),
		newModelCmd(g), newReleaseCmd(g), newSiteCmd(g), newPolicyCmd(g), newQueueCmd(g), newSimulateCmd(g),
		newWorkloadCmd(g), newMonitorCmd(g),
	)
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
