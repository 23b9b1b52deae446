// Command modelfleet is the one binary of modelfleet: the embedded dev stack,
// each production process (gateway, worker, edge agent), and the operator
// CLI (model, release, site).
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/modelfleet/modelfleet/agent"
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

// globals are the connection settings the commands share. Each has an
// environment variable so scripts and containers need no flags.
type globals struct {
	temporalAddress string
	namespace       string
	temporalTLS     workers.TLS
	gatewayURL      string
	registryURL     string
	logLevel        string
	logJSON         bool
	httpClient      *http.Client
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
	pf.StringVar(&g.gatewayURL, "gateway-url", defaultGatewayURL(), "gateway base URL: events webhook and site directory ($MODELFLEET_GATEWAY_URL)")
	pf.StringVar(&g.registryURL, "registry-url", envOr("MODELFLEET_REGISTRY_URL", "http://127.0.0.1:8081"), "embedded model registry base URL ($MODELFLEET_REGISTRY_URL)")
	pf.StringVar(&g.logLevel, "log-level", envOr("MODELFLEET_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	pf.BoolVar(&g.logJSON, "log-json", false, "write logs as JSON")
	edge := newEdgeCmd(g)
	root.AddCommand(
		newDevCmd(g), newGatewayCmd(g), newWorkerCmd(g), edge,
		newModelCmd(g), newReleaseCmd(g), newSiteCmd(g), newPolicyCmd(g), newQueueCmd(g), newSimulateCmd(g),
		newWorkloadCmd(g), newMonitorCmd(g), newKeysCmd(),
	)
	// Every command but the edge agent takes the Temporal settings: a site
	// holds no Temporal credential and never dials Temporal.
	for _, c := range root.Commands() {
		if c != edge {
			g.addTemporalFlags(c.PersistentFlags())
		}
	}
	// Signing in talks to the issuer only.
	root.AddCommand(newLoginCmd(), newLogoutCmd())
	// A minimal Open Inference Protocol server, for --oip-server.
	root.AddCommand(&cobra.Command{
		Use:                "oip-serve",
		Short:              "Serve one model file over the Open Inference Protocol on a loopback port (an external model server for --oip-server)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return agent.ServeOIP(cmd.Context(), args, cmd.ErrOrStderr())
		},
	})
	// Cobra finds the command before it parses flags, and a flag it does
	// not know there takes the next word as its value: known to the root
	// (hidden, not inherited), `modelfleet --temporal-tls release list`
	// still finds `release list`, which parses the flag for real.
	root.Flags().Bool("temporal-tls", false, "")
	_ = root.Flags().MarkHidden("temporal-tls")
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
